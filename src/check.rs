//! `paperlb check`: resolves the cluster configuration, then reports the server's version, whether our
//! CRDs are served, and (via SelfSubjectAccessReview) whether every permission the controller needs is
//! granted; then each LoadBalancerConfig's LB hosts (`explain::check_hosts`: reachable, authorized,
//! version, free ports). One line per problem, saying what to do.
//!
//! Owns: the list of permissions the controller needs ([`permissions`]), kept equal to
//! `manifests/base/rbac.yaml` by a test. Must not: print a secret, or write anything but SSARs.

use std::io::Write;

use serde_json::{Value, json};

use crate::cli::{self, Arg, Exit, Usage};
use crate::kube::Error;
use crate::kube::auth::Credentials;
use crate::kube::client::{
    Client, ClientOptions, LOADBALANCERS, Resource, SELF_SUBJECT_ACCESS_REVIEWS,
};
use crate::kube::config::{self, LoadOptions};

pub const HELP: &str = "\
paperlb check: check that the controller can work with this cluster

Usage: paperlb check [flags]

Prints the cluster, user and auth method it resolved (never the secret), the server's version, whether
the LoadBalancer and LoadBalancerConfig CRDs are installed, whether every permission the controller
needs is granted, and, for each LoadBalancerConfig's LB host, whether its updater is reachable and
accepts the config's token, its version, and how many ports of the range are free.

Exit codes: 0 all is well; 1 warnings only (no LoadBalancerConfig yet: LoadBalancer Services stay
pending until one is applied); 2 problems (PROBLEM lines), no configuration, or a usage error.

Flags:
  --kubeconfig PATH   kubeconfig file (default: $KUBECONFIG, in-cluster, then ~/.kube/config)
  --context NAME      kubeconfig context (default: current-context)
  --namespace NS      the controller's namespace (default: paperlb-system)
  -h, --help          this help
";

/// Validated flags of `paperlb check`.
#[derive(Debug, Clone)]
pub struct Config {
    pub load: LoadOptions,
    pub namespace: String,
}

/// Parses the flags after `check`; `Ok(None)` means help was asked for. `load` carries the environment
/// values main read.
pub fn parse(args: &[String], mut load: LoadOptions) -> Result<Option<Config>, Usage> {
    let mut namespace = "paperlb-system".to_string();
    for arg in cli::parse(args, HELP)? {
        match arg {
            Arg::Help => return Ok(None),
            Arg::Value(k, v) if k == "kubeconfig" => load.kubeconfig = Some(v.into()),
            Arg::Value(k, v) if k == "context" => load.context = Some(v),
            Arg::Value(k, v) if k == "namespace" => namespace = v,
            other => return Err(Usage(format!("unexpected flag {other:?}"))),
        }
    }
    if namespace.is_empty() {
        return Err(Usage("flag --namespace: must not be empty".into()));
    }
    Ok(Some(Config { load, namespace }))
}

/// One permission the controller needs: verb on group/resource[/subresource], cluster-wide or in the
/// controller's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    pub verb: &'static str,
    /// True: only needed in the controller's namespace (Role); false: in every namespace (ClusterRole).
    pub namespaced: bool,
}

/// What `manifests/base/rbac.yaml` grants, rule by rule, as kubectl names resources
/// (`resource.group/subresource: verbs`); `(namespaced)`: only in the controller's namespace.
const RULES: &[&str] = &[
    "services: get list watch",
    "services/status: patch",
    "nodes: get list watch",
    "endpointslices.discovery.k8s.io: get list watch",
    "events: create patch",
    "loadbalancers.lb.paperlb.com: get list watch create patch delete",
    "loadbalancers.lb.paperlb.com/status: patch",
    "loadbalancerconfigs.lb.paperlb.com: get list watch (namespaced)",
    "secrets: get list watch (namespaced)",
    "loadbalancerconfigs.lb.paperlb.com/status: patch (namespaced)",
    "leases.coordination.k8s.io: get create update (namespaced)",
];

/// Everything `RULES` grants, one verb at a time.
pub fn permissions() -> Vec<Permission> {
    let mut out = Vec::new();
    for rule in RULES {
        let (what, verbs) = rule.split_once(": ").unwrap_or((rule, ""));
        let namespaced = verbs.ends_with(" (namespaced)");
        let verbs = verbs.trim_end_matches(" (namespaced)");
        let (resource, subresource) = what.split_once('/').unwrap_or((what, ""));
        let (resource, group) = resource.split_once('.').unwrap_or((resource, ""));
        for verb in verbs.split(' ') {
            out.push(Permission {
                group,
                resource,
                subresource,
                verb,
                namespaced,
            });
        }
    }
    out
}

/// Runs the check, printing the report to stdout. `Err` with exit code 1 for warnings only, 2 for
/// problems or when the check cannot run.
pub fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let (code, message) = match check(&config).map_err(Exit::unsure)? {
        (0, 0) => return Ok(()),
        (0, w) => (1, format!("no problems, {w} warning(s)")),
        (p, _) => (2, format!("{p} problem(s) found")),
    };
    Err(Exit { code, message }.into())
}

/// The body of `run`: prints the report, and returns how many problems and warnings it found.
fn check(config: &Config) -> Result<(usize, usize), Box<dyn std::error::Error>> {
    let out = &mut std::io::stdout().lock();
    let cluster = config::load(&config.load)?;
    let creds = Credentials::new(&cluster);
    writeln!(out, "configuration: {}", cluster.origin)?;
    if !cluster.context_name.is_empty() {
        writeln!(
            out,
            "context: {} (cluster {}, user {})",
            cluster.context_name, cluster.cluster_name, cluster.user_name
        )?;
    }
    writeln!(out, "server: {}", cluster.server)?;
    writeln!(out, "auth: {}", creds.method())?;

    let client = Client::new(&cluster, ClientOptions::default())?;
    let mut problems = 0;
    let mut problem = |out: &mut dyn std::io::Write, msg: String| -> std::io::Result<()> {
        problems += 1;
        writeln!(out, "PROBLEM: {msg}")
    };

    // The version call proves reachability, TLS and credentials; nothing else can work without it.
    match client.get::<Value>("/version") {
        Ok(v) => writeln!(
            out,
            "server version: {}",
            v["gitVersion"].as_str().unwrap_or("unknown")
        )?,
        Err(e) => {
            problem(out, format!("cannot reach the API server: {e}"))?;
            return Ok((problems, 0));
        }
    }

    let apply = "kubectl apply -f manifests/crds/";
    let group_path = LOADBALANCERS.path(None, None, None);
    let group_path = group_path.trim_end_matches("/loadbalancers");
    match client.get::<Value>(group_path) {
        Ok(list) => {
            let served: Vec<&str> = list["resources"]
                .as_array()
                .map(|a| a.iter().filter_map(|r| r["name"].as_str()).collect())
                .unwrap_or_default();
            for crd in ["loadbalancers", "loadbalancerconfigs"] {
                if served.contains(&crd) {
                    writeln!(out, "CRD {crd}.lb.paperlb.com: installed")?;
                } else {
                    problem(
                        out,
                        format!("CRD {crd}.lb.paperlb.com is not installed: {apply}"),
                    )?;
                }
            }
        }
        Err(e) if e.is_not_found() => problem(
            out,
            format!("CRDs of lb.paperlb.com/v1alpha1 are not installed: {apply}"),
        )?,
        Err(e) => problem(
            out,
            format!("cannot read API group lb.paperlb.com/v1alpha1: {e}"),
        )?,
    }

    let ns = &config.namespace;
    let permissions = permissions();
    // Denied or not checked: either way, not known to be granted.
    let mut not_granted = 0;
    for perm in &permissions {
        let res = Resource::new(perm.group, "", perm.resource, perm.namespaced);
        let p = res.access(perm.verb, perm.subresource, perm.namespaced.then_some(ns));
        let why = match access_allowed(&client, perm, ns) {
            Ok(true) => continue,
            Ok(false) => format!("permission denied: {p} (apply manifests/base/rbac.yaml)"),
            Err(e) => format!("cannot check {p}: {e}"),
        };
        not_granted += 1;
        problem(out, why)?;
    }
    if not_granted == 0 {
        writeln!(out, "permissions: all {} granted", permissions.len())?;
    }
    let hosts = crate::explain::check_hosts(&client, ns);
    for line in &hosts {
        match line {
            Ok(l) => writeln!(out, "{l}")?,
            Err(p) => problem(out, p.clone())?,
        }
    }
    if hosts.is_empty() {
        writeln!(
            out,
            "WARNING: no LoadBalancerConfig in namespace {ns}: LoadBalancer Services stay pending until one is applied (see manifests/examples/loadbalancerconfig.yaml)"
        )?;
    } else if problems == 0 {
        writeln!(out, "all checks passed")?;
    }
    Ok((problems, usize::from(hosts.is_empty())))
}

/// One SelfSubjectAccessReview.
fn access_allowed(client: &Client, perm: &Permission, namespace: &str) -> Result<bool, Error> {
    let mut attrs = json!({"verb": perm.verb, "group": perm.group, "resource": perm.resource});
    if !perm.subresource.is_empty() {
        attrs["subresource"] = json!(perm.subresource);
    }
    if perm.namespaced {
        attrs["namespace"] = json!(namespace);
    }
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attrs},
    });
    let answer: Value =
        client.create(&SELF_SUBJECT_ACCESS_REVIEWS.path(None, None, None), &review)?;
    Ok(answer["status"]["allowed"].as_bool() == Some(true))
}
