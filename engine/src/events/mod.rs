//! `docker events`: what happened to containers, images, networks and volumes, and (as daemon
//! events) the remote audit trail. Events are broadcast to followers and the last
//! [`KEEP`] are kept in memory for `--since`; they are a live view, not a record (the audit
//! trail and the container records are the durable ones).

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

const KEEP: usize = 1024;

#[derive(Clone, Debug)]
pub struct Event {
    /// container, image, network, volume, daemon.
    pub typ: &'static str,
    pub action: String,
    pub id: String,
    pub attributes: BTreeMap<String, String>,
    pub time_nano: i128,
}

impl Event {
    pub fn new(typ: &'static str, action: impl Into<String>, id: impl Into<String>) -> Self {
        let time_nano = ::time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        Event { typ, action: action.into(), id: id.into(), attributes: BTreeMap::new(), time_nano }
    }

    pub fn attr(mut self, k: &str, v: impl Into<String>) -> Self {
        self.attributes.insert(k.to_string(), v.into());
        self
    }

    /// Docker's JSON shape (with the legacy `status`, `id`, `from` of container events).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "Type": self.typ,
            "Action": self.action,
            "Actor": {"ID": self.id, "Attributes": self.attributes},
            "scope": "local",
            "time": (self.time_nano / 1_000_000_000) as i64,
            "timeNano": self.time_nano as i64,
        });
        if self.typ == "container" || self.typ == "image" {
            v["status"] = json!(self.action);
            v["id"] = json!(self.id);
            if let Some(image) = self.attributes.get("image") {
                v["from"] = json!(image);
            }
        }
        v
    }

    /// Docker's `--filter` rules: every key given must match one of its values.
    pub fn matches(&self, filters: &HashMap<String, Vec<String>>) -> bool {
        filters.iter().all(|(k, vals)| {
            vals.is_empty()
                || vals.iter().any(|v| match k.as_str() {
                    "type" => self.typ == v,
                    "event" => self.action == *v || self.action.split(':').next() == Some(v.as_str()),
                    "container" => self.typ == "container" && (self.id.starts_with(v.as_str()) || self.attributes.get("name") == Some(v)),
                    "image" => self.attributes.get("image") == Some(v) || (self.typ == "image" && self.id.contains(v.as_str())),
                    "network" => self.typ == "network" && (self.id.starts_with(v.as_str()) || self.attributes.get("name") == Some(v)),
                    "volume" => self.typ == "volume" && self.id == *v,
                    "label" => match v.split_once('=') {
                        Some((lk, lv)) => self.attributes.get(lk).is_some_and(|x| x == lv),
                        None => self.attributes.contains_key(v.as_str()),
                    },
                    _ => false,
                })
        })
    }
}

pub struct Events {
    tx: broadcast::Sender<Arc<Event>>,
    recent: Mutex<VecDeque<Arc<Event>>>,
}

impl Default for Events {
    fn default() -> Self {
        Events { tx: broadcast::channel(256).0, recent: Mutex::new(VecDeque::with_capacity(KEEP)) }
    }
}

impl Events {
    pub fn emit(&self, e: Event) {
        let e = Arc::new(e);
        {
            let mut r = self.recent.lock().unwrap();
            if r.len() == KEEP {
                r.pop_front();
            }
            r.push_back(e.clone());
        }
        let _ = self.tx.send(e);
    }

    /// The kept events at or after `since` (nanoseconds), and a receiver of what comes next:
    /// taken together, so nothing falls between them.
    pub fn subscribe(&self, since: Option<i128>) -> (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>) {
        let r = self.recent.lock().unwrap();
        let rx = self.tx.subscribe();
        let past = match since {
            Some(s) => r.iter().filter(|e| e.time_nano >= s).cloned().collect(),
            None => Vec::new(),
        };
        (past, rx)
    }
}

/// Container labels as event attributes (Docker adds them), with name and image.
pub fn container_attributes(name: &str, image: &str, labels: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut a: BTreeMap<String, String> = labels.cloned().unwrap_or_default();
    a.insert("name".into(), name.to_string());
    a.insert("image".into(), image.to_string());
    a
}

/// Unused keys of a filter map are an error in Docker.
pub fn check_filters(filters: &HashMap<String, Vec<String>>) -> Result<(), String> {
    for k in filters.keys() {
        if !["type", "event", "container", "image", "network", "volume", "label"].contains(&k.as_str()) {
            return Err(format!("invalid filter '{k}'"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_the_replay_window() {
        let ev = Events::default();
        let e = Event::new("container", "start", "abc123").attr("name", "web").attr("image", "busybox").attr("tier", "front");
        let t = e.time_nano;
        ev.emit(e);
        ev.emit(Event::new("image", "tag", "sha256:1").attr("name", "busybox:new"));
        let (past, _) = ev.subscribe(Some(t));
        assert_eq!(past.len(), 2);
        assert!(ev.subscribe(None).0.is_empty());
        let f = |k: &str, v: &str| HashMap::from([(k.to_string(), vec![v.to_string()])]);
        assert!(past[0].matches(&f("container", "web")) && past[0].matches(&f("container", "abc")));
        assert!(past[0].matches(&f("label", "tier=front")) && !past[0].matches(&f("label", "tier=back")));
        assert!(!past[1].matches(&f("type", "container")) && past[1].matches(&f("event", "tag")));
        let j = past[0].to_json();
        assert_eq!(
            (j["status"].as_str(), j["from"].as_str(), j["Actor"]["Attributes"]["name"].as_str()),
            (Some("start"), Some("busybox"), Some("web"))
        );
        assert!(check_filters(&f("bogus", "x")).is_err());
    }
}
