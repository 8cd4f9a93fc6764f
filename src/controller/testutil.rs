//! Test helpers: a tiny seeded xorshift to shuffle table cases (MetalLB style, no rand crate) and
//! object builders.

use crate::model::{Node, NodeAddress, NodeCondition, ObjectMeta};

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// The cases in a fresh random order.
pub fn shuffled<'a, T>(cases: &'a [T], rng: &mut Rng) -> Vec<&'a T> {
    let mut v: Vec<&T> = cases.iter().collect();
    rng.shuffle(&mut v);
    v
}

pub fn node(name: &str, ready: &str, addresses: &[(&str, &str)]) -> Node {
    let mut n = Node {
        metadata: ObjectMeta {
            name: name.into(),
            resource_version: "1".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    n.status.conditions.push(NodeCondition {
        type_: "Ready".into(),
        status: ready.into(),
    });
    for (t, a) in addresses {
        n.status.addresses.push(NodeAddress {
            type_: t.to_string(),
            address: a.to_string(),
        });
    }
    n
}
