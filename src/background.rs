//! Background job payloads and the queue each one goes to. Payloads carry ids only: the rows they
//! name say what to do, so a job that runs twice does no harm.
//!
//! A leaf: `store` enqueues these inside its transactions and `jobs` runs them, and neither is
//! imported here.

use serde::{Deserialize, Serialize};

/// A job payload, and the queue (apalis `job_type`) that carries it.
pub trait BackgroundJob: Serialize {
    const QUEUE: &'static str;
}

/// Send (or re-try) one email delivery.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmailJob {
    pub delivery_id: uuid::Uuid,
}

impl BackgroundJob for EmailJob {
    const QUEUE: &'static str = "guestpass::email";
}

/// Send (or re-try) one webhook delivery: one event to one endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WebhookJob {
    pub delivery_id: uuid::Uuid,
}

impl BackgroundJob for WebhookJob {
    const QUEUE: &'static str = "guestpass::webhook";
}

/// Scheduled work that must run once per deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Task {
    /// Email re-verification reminders.
    Sweep,
    /// Delete what is past its retention period.
    Retention,
    /// Invite the waiting rows of an uploaded file, one transaction each.
    BulkInvite(uuid::Uuid),
}

/// Run one maintenance task (`trigger`: `SCHEDULE` or `MANUAL`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MaintenanceJob {
    pub task: Task,
    pub trigger: String,
}

impl BackgroundJob for MaintenanceJob {
    /// Scheduled maintenance: the re-verification sweep, retention and bulk invite files.
    const QUEUE: &'static str = "guestpass::maintenance";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_keep_their_wire_shape() {
        // Rows already queued (and `store::queue::enqueue_emails`, which builds the JSON in SQL) rely
        // on these shapes.
        let id = uuid::Uuid::nil();
        assert_eq!(
            serde_json::to_string(&EmailJob { delivery_id: id }).unwrap(),
            r#"{"delivery_id":"00000000-0000-0000-0000-000000000000"}"#
        );
        assert_eq!(
            serde_json::to_string(&MaintenanceJob {
                task: Task::BulkInvite(id),
                trigger: "SCHEDULE".into(), // not a column value: the payload's own
            })
            .unwrap(),
            r#"{"task":{"BulkInvite":"00000000-0000-0000-0000-000000000000"},"trigger":"SCHEDULE"}"# // not a column value
        );
        assert_ne!(EmailJob::QUEUE, MaintenanceJob::QUEUE);
        assert_eq!(
            serde_json::to_string(&WebhookJob { delivery_id: id }).unwrap(),
            r#"{"delivery_id":"00000000-0000-0000-0000-000000000000"}"#
        );
        assert_ne!(WebhookJob::QUEUE, EmailJob::QUEUE);
    }
}
