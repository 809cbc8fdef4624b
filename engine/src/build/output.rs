//! What a build tells its client, as Docker's JSON stream: `stream` text (the steps and
//! their output), `aux` with the image ID, and `errorDetail` at a failure.

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

#[derive(Clone)]
pub struct Output {
    tx: mpsc::Sender<Bytes>,
    /// `q`: only errors and the final ID are sent.
    quiet: bool,
}

impl Output {
    pub fn new(tx: mpsc::Sender<Bytes>, quiet: bool) -> Output {
        Output { tx, quiet }
    }

    async fn send(&self, v: Value) {
        let _ = self.tx.send(Bytes::from(v.to_string() + "\n")).await;
    }

    /// Step text and a RUN's output.
    pub async fn text(&self, text: impl Into<String>) {
        if !self.quiet {
            self.send(json!({ "stream": text.into() })).await;
        }
    }

    /// The built image's ID: `aux` for the CLI, and the line `-q` shows.
    pub async fn built(&self, id: &berth_images::Digest) {
        self.send(json!({ "aux": { "ID": id } })).await;
        if self.quiet {
            self.send(json!({ "stream": format!("{id}\n") })).await;
        }
    }

    pub async fn error(&self, message: &str, code: Option<i32>) {
        let detail = match code {
            Some(c) => json!({ "code": c, "message": message }),
            None => json!({ "message": message }),
        };
        self.send(json!({ "errorDetail": detail, "error": message })).await;
    }

    /// The sender for a pull's progress lines (a FROM of an image not here).
    pub fn progress(&self) -> crate::images::Progress {
        crate::images::Progress(self.tx.clone())
    }

    /// The client went away: the build stops.
    pub fn gone(&self) -> bool {
        self.tx.is_closed()
    }

    pub async fn closed(&self) {
        self.tx.closed().await
    }
}
