//! Bulk invites: the progress and per-row results of a file uploaded to `POST /admin/invites.csv`.

use super::ids::{Kind, global as gid};
use super::query::paginate;
use super::types::{Page, User};
use super::{page, parse_id, state};
use crate::domain::ProductRole;
use crate::domain::authorization::Object;
use crate::domain::status;
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
    async fn bulk_invite(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The id the upload answered with. An unknown one is `NOT_FOUND`; `FORBIDDEN` unless the caller administers the bulk invite's site."
        )]
        id: ID,
    ) -> AppResult<Option<BulkInvite>> {
        super::node::bulk_invite(ctx, parse_id(&id, "Bulk invite")?)
            .await
            .map(Some)
    }

    /// The bulk invites of a site, newest first, with their progress (site admins: the people who
    /// read `bulkInvite`).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn bulk_invites(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The site (global id): `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN` unless the caller administers it."
        )]
        site_id: ID,
        #[graphql(
            desc = "How many bulk invites to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
    ) -> AppResult<Option<Page<BulkInvite>>> {
        bulk_invites_of(ctx, parse_id(&site_id, "Site")?, first, after).await
    }
}

/// A page of a site's bulk invite files, newest first (`bulkInvites(siteId)`, `Site.bulkInvites`).
pub(crate) async fn bulk_invites_of(
    ctx: &Context<'_>,
    site: uuid::Uuid,
    first: Option<i32>,
    after: Option<String>,
) -> AppResult<Option<Page<BulkInvite>>> {
    let (limit, after) = page::<(DateTime<Utc>, uuid::Uuid)>(first, after)?;
    // A site of another organization is `NOT_FOUND`; then the policy decides, as for one file.
    super::site_access(ctx, site).await?;
    super::require_sight(ctx, Object::SiteAdministration { site }).await?;
    let with_total = ctx.look_ahead().field("totalCount").exists();
    let (rows, total) = state(ctx)
        .db
        .run(move |c| {
            let rows = bulk::list(c, site, after, limit + 1)?;
            let total = if with_total { bulk::count(c, site)? } else { 0 };
            Ok((rows, total))
        })
        .await?;
    Ok(Some(paginate(
        rows,
        limit,
        total,
        |(b, _)| (b.created_at, b.id),
        |(row, progress)| BulkInvite { row, progress },
    )))
}

/// Where a bulk invite's job is.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum BulkInviteStatus {
    /// Waiting for a worker.
    Queued,
    /// Inviting rows, one at a time.
    Running,
    /// Stopped at the uploader's daily invite cap (`GUESTPASS_INVITES_PER_ADMIN_PER_DAY` invites in any
    /// 24 hours): the waiting rows stay `PENDING`, and the file goes on by itself at `resumesAt`.
    Paused,
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

impl From<status::BulkRowStatus> for BulkRowStatus {
    fn from(stored: status::BulkRowStatus) -> Self {
        match stored {
            status::BulkRowStatus::Pending => Self::Pending,
            status::BulkRowStatus::Invited => Self::Invited,
            status::BulkRowStatus::Refused => Self::Refused,
            status::BulkRowStatus::Invalid => Self::Invalid,
        }
    }
}

impl From<BulkRowStatus> for status::BulkRowStatus {
    fn from(shown: BulkRowStatus) -> Self {
        match shown {
            BulkRowStatus::Pending => Self::Pending,
            BulkRowStatus::Invited => Self::Invited,
            BulkRowStatus::Refused => Self::Refused,
            BulkRowStatus::Invalid => Self::Invalid,
        }
    }
}

impl From<status::BulkStatus> for BulkInviteStatus {
    fn from(stored: status::BulkStatus) -> Self {
        match stored {
            status::BulkStatus::Queued => Self::Queued,
            status::BulkStatus::Running => Self::Running,
            status::BulkStatus::Paused => Self::Paused,
            status::BulkStatus::Done => Self::Done,
        }
    }
}

pub struct BulkInvite {
    pub(crate) row: bulk::BulkInvite,
    pub(crate) progress: Progress,
}

/// A CSV file of invites uploaded to `POST /admin/invites.csv`, and its progress. A worker invites
/// its valid rows one at a time, each as `inviteUsers` would (and as the uploader).
#[Object]
impl BulkInvite {
    /// The bulk invite's id, as the upload answered it.
    pub async fn id(&self) -> AppResult<ID> {
        Ok(gid(Kind::BulkInvite, self.row.id))
    }
    /// The id of the site the file invites people to.
    #[graphql(deprecation = "Use `site { id }`; removed in the next release.")]
    async fn site_id(&self) -> ID {
        gid(Kind::Site, self.row.site_id)
    }
    /// The site the file invites people to.
    async fn site(&self, ctx: &Context<'_>) -> AppResult<Option<super::types::Site>> {
        super::node::site(ctx, self.row.site_id).await.map(Some)
    }
    /// Where its job is.
    async fn status(&self) -> BulkInviteStatus {
        self.row.status.into()
    }
    /// Who uploaded the file; the invites are theirs (`Invite.invitedBy`). Null if that account no
    /// longer exists.
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
    /// When the file was uploaded.
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    /// When the worker began on it; null while `QUEUED`.
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.row.started_at
    }
    /// When every valid row had been tried; null until `DONE`.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.row.finished_at
    }
    /// When a `PAUSED` file goes on by itself: the moment enough of the uploader's rolling 24-hour
    /// invite window frees for its next row. Null unless `PAUSED`.
    async fn resumes_at(&self) -> Option<DateTime<Utc>> {
        self.row.resumes_at
    }
    /// Rows in the file (blank lines not counted).
    async fn total_rows(&self) -> i64 {
        self.progress.total
    }
    /// Valid rows still waiting to be tried (`PENDING`).
    async fn pending_rows(&self) -> i64 {
        self.progress.pending
    }
    /// Rows that created an invite (`INVITED`).
    async fn invited_rows(&self) -> i64 {
        self.progress.invited
    }
    /// Rows tried and refused (`REFUSED`; each row's `code` says why).
    async fn refused_rows(&self) -> i64 {
        self.progress.refused
    }
    /// Rows found wrong at upload and never tried (`INVALID`; each row's `code` and `message` say
    /// how).
    async fn invalid_rows(&self) -> i64 {
        self.progress.invalid
    }
    /// The rows in file order, optionally only those with one status.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn rows(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only rows with this status; every row when left out.")] status: Option<
            BulkRowStatus,
        >,
        #[graphql(
            desc = "How many rows to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
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
            .run(move |c| bulk::rows(c, id, status.map(Into::into), after, limit + 1))
            .await?;
        Ok(paginate(rows, limit, total, |r| r.line, BulkInviteRow))
    }
}

pub struct BulkInviteRow(bulk::BulkRow);

/// One row of a bulk invite file and its outcome.
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
    /// The role the row asks for; null when it names groups only, or when its role was not
    /// understood (the row is then `INVALID`).
    async fn role(&self) -> Option<ProductRole> {
        self.0.role.as_deref().and_then(ProductRole::from_code)
    }
    /// The key of the space a guest is put in, as written; null when the row names none.
    async fn space_key(&self) -> Option<&str> {
        self.0.space_key.as_deref()
    }
    /// The groups the person is added to, as written (empty when none).
    async fn group_names(&self) -> &[String] {
        &self.0.group_names
    }
    /// What happened to the row.
    async fn status(&self) -> BulkRowStatus {
        self.0.status.into()
    }
    /// Why the row was refused or is invalid: the same codes as `inviteUsers`' `extensions.code`.
    async fn code(&self) -> Option<crate::error::ErrorCode> {
        self.0
            .code
            .as_deref()
            .and_then(crate::error::ErrorCode::parse)
    }
    /// Why, in words, for a refused or invalid row; null otherwise.
    async fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }
    /// The id of the invite the row created; null unless `INVITED`.
    #[graphql(deprecation = "Use `invite { id }`; removed in the next release.")]
    async fn invite_id(&self) -> Option<ID> {
        self.0.invite_id.map(|i| gid(Kind::Invite, i))
    }
    /// The invite the row created, with its delivery; null unless `INVITED`.
    async fn invite(&self, ctx: &Context<'_>) -> AppResult<Option<super::types::Invite>> {
        match self.0.invite_id {
            Some(id) => super::node::invite(ctx, id).await.map(Some),
            None => Ok(None),
        }
    }
    /// When the row was tried, or found invalid at upload; null while `PENDING`.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}
