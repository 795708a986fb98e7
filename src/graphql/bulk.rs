//! Bulk invites: the progress and per-row results of a file uploaded to `POST /admin/invites.csv`.

use super::query::paginate;
use super::types::{Page, User};
use super::{caller, page, parse_id, state};
use crate::domain::ProductRole;
use crate::error::AppResult;
use crate::store::bulk::{self, Progress};
use crate::store::directory;
use async_graphql::{Context, Enum, ID, Object};
use chrono::{DateTime, Utc};

#[derive(Default)]
pub struct BulkQuery;

#[Object]
impl BulkQuery {
    /// A bulk invite of a site the caller administers: where its job is, and each row's outcome.
    async fn bulk_invite(&self, ctx: &Context<'_>, id: ID) -> AppResult<BulkInvite> {
        let who = caller(ctx).await?;
        let id = parse_id(&id, "Bulk invite")?;
        let (row, progress) = state(ctx)
            .db
            .run(move |c| {
                let b = bulk::get(c, &who, id)?;
                let p = bulk::progress(c, id)?;
                Ok((b, p))
            })
            .await?;
        Ok(BulkInvite { row, progress })
    }
}

/// Where a bulk invite's job is.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum BulkInviteStatus {
    /// Waiting for a worker.
    Queued,
    /// Inviting rows, one at a time.
    Running,
    /// Every valid row was tried.
    Done,
}

/// What happened to one row of the file.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum BulkRowStatus {
    /// Valid, waiting for its turn.
    Pending,
    /// Invited: `inviteId` is the invite, and its email is on its way.
    Invited,
    /// Tried, and refused by the rules of `inviteUsers` (`code` says which).
    Refused,
    /// The row itself is wrong (`code` and `message` say how) and was never tried.
    Invalid,
}

impl BulkRowStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Invited => "INVITED",
            Self::Refused => "REFUSED",
            Self::Invalid => "INVALID",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "PENDING" => Self::Pending,
            "INVITED" => Self::Invited,
            "REFUSED" => Self::Refused,
            _ => Self::Invalid,
        }
    }
}

/// A CSV file of invites and its progress.
pub struct BulkInvite {
    row: bulk::BulkInvite,
    progress: Progress,
}

#[Object]
impl BulkInvite {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    async fn site_id(&self) -> ID {
        ID(self.row.site_id.to_string())
    }
    async fn status(&self) -> BulkInviteStatus {
        match self.row.status.as_str() {
            "QUEUED" => BulkInviteStatus::Queued,
            "RUNNING" => BulkInviteStatus::Running,
            _ => BulkInviteStatus::Done,
        }
    }
    /// Who uploaded the file; the invites are theirs (`Invite.invitedBy`).
    async fn uploaded_by(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        let Some(id) = self.row.uploaded_by else {
            return Ok(None);
        };
        let org = self.row.organization_id;
        let u = state(ctx)
            .db
            .run(move |c| directory::user_in_org(c, org, id))
            .await?;
        Ok(Some(User::new(u)))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.row.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.row.finished_at
    }
    /// Rows in the file (blank lines not counted).
    async fn total_rows(&self) -> i64 {
        self.progress.total
    }
    async fn pending_rows(&self) -> i64 {
        self.progress.pending
    }
    async fn invited_rows(&self) -> i64 {
        self.progress.invited
    }
    async fn refused_rows(&self) -> i64 {
        self.progress.refused
    }
    async fn invalid_rows(&self) -> i64 {
        self.progress.invalid
    }
    /// The rows in file order, optionally only those with one status.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn rows(
        &self,
        ctx: &Context<'_>,
        status: Option<BulkRowStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Page<BulkInviteRow>> {
        let (limit, after) = page::<i32>(first, after)?;
        let id = self.row.id;
        let total = match status {
            None => self.progress.total,
            Some(BulkRowStatus::Pending) => self.progress.pending,
            Some(BulkRowStatus::Invited) => self.progress.invited,
            Some(BulkRowStatus::Refused) => self.progress.refused,
            Some(BulkRowStatus::Invalid) => self.progress.invalid,
        };
        let rows = state(ctx)
            .db
            .run(move |c| bulk::rows(c, id, status.map(BulkRowStatus::as_str), after, limit + 1))
            .await?;
        Ok(paginate(rows, limit, total, |r| r.line, BulkInviteRow))
    }
}

/// One row of a bulk invite file and its outcome.
pub struct BulkInviteRow(bulk::BulkRow);

#[Object]
impl BulkInviteRow {
    /// The line in the file, counting the header as line 1.
    async fn line(&self) -> i32 {
        self.0.line
    }
    /// The address as written in the file.
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn role(&self) -> Option<ProductRole> {
        self.0.role.as_deref().and_then(ProductRole::from_code)
    }
    async fn space_key(&self) -> Option<&str> {
        self.0.space_key.as_deref()
    }
    async fn group_names(&self) -> &[String] {
        &self.0.group_names
    }
    async fn status(&self) -> BulkRowStatus {
        BulkRowStatus::parse(&self.0.status)
    }
    /// Why the row was refused or is invalid: the same codes as `inviteUsers`' `extensions.code`.
    async fn code(&self) -> Option<&str> {
        self.0.code.as_deref()
    }
    async fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }
    /// The invite the row created.
    async fn invite_id(&self) -> Option<ID> {
        self.0.invite_id.map(|i| ID(i.to_string()))
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}
