//! Generated container names: `adjective_noun`, like Docker's, from berth's own lists.

const ADJECTIVES: &[&str] = &[
    "agile", "bold", "brave", "calm", "clever", "eager", "fair", "gentle", "happy", "keen", "kind", "lively", "lucid", "merry", "nimble",
    "patient", "quiet", "rapid", "sharp", "steady", "sturdy", "swift", "tidy", "vivid", "wise",
];
const NOUNS: &[&str] = &[
    "anchor", "beacon", "buoy", "capstan", "compass", "current", "dock", "harbor", "hull", "jetty", "keel", "lantern", "mast", "mooring",
    "pier", "quay", "rudder", "sail", "sextant", "tide", "tiller", "wharf", "windlass",
];

/// A name derived from the id's bytes; `attempt` > 0 appends a number to dodge collisions.
pub fn generate(id: &str, attempt: u32) -> String {
    let n = u64::from_str_radix(&id[..12], 16).unwrap_or(0);
    let base = format!("{}_{}", ADJECTIVES[(n % ADJECTIVES.len() as u64) as usize], NOUNS[((n >> 16) % NOUNS.len() as u64) as usize]);
    if attempt == 0 {
        base
    } else {
        format!("{base}{attempt}")
    }
}
