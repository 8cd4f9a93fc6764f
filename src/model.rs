//! serde types for the Kubernetes fields paperlb uses. (placeholder)
