//! Bulk invites: an uploaded file's rows are checked and stored with the job that invites them, in one
//! transaction; the job then invites one row per transaction under exactly the rules of `inviteUsers`
//! (seats, guest allowance, domain rules, daily cap), writing the row's outcome in that same
//! transaction, so a crash or a retried job never invites a row twice and never skips one.
//!
//! A file that reaches its uploader's daily invite cap pauses (`PAUSED`, with `resumes_at`) instead of
//! refusing the rest: its rows stay `PENDING`, and when the service clock reaches `resumes_at` the
//! resume tick ([`resume_due`]) sets it running again with a new job, which goes on from the first
//! waiting row. How many rows may go and when the rest resume is [`crate::domain::bulk::pace`].

use crate::db::schema::{bulk_invite_rows, bulk_invites, groups, spaces};
use crate::domain::ProductRole;
use crate::domain::bulk::{Known, Row, upload_problem};
use crate::domain::status::{BulkRowStatus, BulkStatus};
use crate::error::{AppError, AppResult};
use crate::store::access::{self, Caller};
use crate::store::audit::{self, Audit};
use crate::store::invites::{self, DeliveryPolicy, NewInvites};
use crate::store::queue;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = bulk_invites, check_for_backend(diesel::pg::Pg))]
pub struct BulkInvite {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub site_id: Uuid,
    pub uploaded_by: Option<Uuid>,
    pub status: BulkStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When a `PAUSED` file goes on (null in every other status).
    pub resumes_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = bulk_invite_rows, check_for_backend(diesel::pg::Pg))]
pub struct BulkRow {
    pub bulk_id: Uuid,
    pub line: i32,
    pub email: String,
    pub role: Option<String>,
    pub space_key: Option<String>,
    pub group_names: Vec<String>,
    pub personal_message: Option<String>,
    pub status: BulkRowStatus,
    pub code: Option<String>,
    pub message: Option<String>,
    pub invite_id: Option<Uuid>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// How many rows of a bulk invite are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub total: i64,
    pub pending: i64,
    pub invited: i64,
    pub refused: i64,
    pub invalid: i64,
}

/// Stores a checked upload and queues its job. Rows naming a space or group that does not exist, a
/// group the uploader may not invite into (`FORBIDDEN`, as `inviteUsers` answers), or a guest address
/// the domain rules refuse, are marked invalid now ([`upload_problem`] decides); the rest wait for
/// the job, which checks again.
pub fn create(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
    rows: Vec<Row>,
    now: DateTime<Utc>,
) -> AppResult<(BulkInvite, Progress)> {
    conn.transaction(|conn| {
        let site = access::site_access(conn, caller, site_id)?;
        site.require_admin()?;
        let org = site.site.organization_id;
        let known = known_names(conn, caller, site_id, org, &rows)?;
        let id = Uuid::new_v4();
        diesel::insert_into(bulk_invites::table)
            .values((
                bulk_invites::id.eq(id),
                bulk_invites::organization_id.eq(org),
                bulk_invites::site_id.eq(site_id),
                bulk_invites::uploaded_by.eq(caller.user.id),
                bulk_invites::status.eq(BulkStatus::Queued),
                bulk_invites::created_at.eq(now),
            ))
            .execute(conn)?;
        let progress = insert_rows(conn, id, rows, &known, now)?;
        queue::enqueue_job(
            conn,
            &crate::background::MaintenanceJob {
                task: crate::background::Task::BulkInvite(id),
                trigger: "UPLOAD".into(),
            },
            0.0,
            Some(&format!("bulk:{id}")),
        )?;
        audit::record(
            conn,
            Audit::new(org, caller.user.id, "invite.bulk_upload", now)
                .target("bulk_invite", id)
                .site(site_id)
                .after(serde_json::json!({
                    "rows": progress.total,
                    "valid": progress.pending,
                    "invalid": progress.invalid,
                })),
        )?;
        let bulk = bulk_invites::table
            .find(id)
            .select(BulkInvite::as_select())
            .first(conn)?;
        Ok((bulk, progress))
    })
}

/// What the database holds about the spaces, groups and domains an upload's rows name, read once
/// for the file ([`crate::domain::bulk::upload_problem`] checks each row against it).
fn known_names(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
    org: Uuid,
    rows: &[Row],
) -> AppResult<Known> {
    let keys: Vec<&str> = rows.iter().filter_map(|r| r.space_key.as_deref()).collect();
    let spaces: Vec<String> = spaces::table
        .filter(spaces::site_id.eq(site_id))
        .filter(spaces::key.eq_any(&keys))
        .select(spaces::key)
        .load(conn)?;
    let names: Vec<String> = rows
        .iter()
        .flat_map(|r| r.group_names.iter().map(|n| n.to_lowercase()))
        .collect();
    let found: Vec<(Uuid, String)> = groups::table
        .filter(groups::organization_id.eq(org))
        .filter(groups::name_normalized.eq_any(&names))
        .select((groups::id, groups::name_normalized))
        .load(conn)?;
    // Each named group, and whether the uploader may grant it (the rule of `addGroupMembers`).
    let mut groups = Vec::with_capacity(found.len());
    for (group, name) in found {
        groups.push((name, crate::store::groups::may_manage(conn, caller, group)?));
    }
    let (domain_mode, domain_patterns) = crate::store::domain_rules::rules(conn, org)?;
    Ok(Known {
        spaces,
        groups,
        domain_mode,
        domain_patterns,
    })
}

/// Stores the file's rows, each `INVALID` with its problem or `PENDING` for the job, and counts them.
fn insert_rows(
    conn: &mut PgConnection,
    id: Uuid,
    rows: Vec<Row>,
    known: &Known,
    now: DateTime<Utc>,
) -> AppResult<Progress> {
    let mut progress = Progress {
        total: rows.len() as i64,
        ..Default::default()
    };
    let mut values = Vec::with_capacity(rows.len());
    for r in rows {
        let problem = upload_problem(&r, known).map(|(c, m)| (c.to_string(), m));
        if problem.is_some() {
            progress.invalid += 1;
        } else {
            progress.pending += 1;
        }
        let (code, message) = problem.unzip();
        values.push((
            bulk_invite_rows::bulk_id.eq(id),
            bulk_invite_rows::line.eq(r.line),
            bulk_invite_rows::email.eq(r.email),
            bulk_invite_rows::role.eq(r.role.map(ProductRole::code)),
            bulk_invite_rows::space_key.eq(r.space_key),
            bulk_invite_rows::group_names.eq(r.group_names),
            bulk_invite_rows::personal_message.eq(r.personal_message),
            bulk_invite_rows::status.eq(if code.is_some() {
                BulkRowStatus::Invalid
            } else {
                BulkRowStatus::Pending
            }),
            bulk_invite_rows::finished_at.eq(code.as_ref().map(|_| now)),
            bulk_invite_rows::code.eq(code),
            bulk_invite_rows::message.eq(message),
        ));
    }
    // 11 parameters a row: chunks keep each statement under PostgreSQL's 65,535.
    for chunk in values.chunks(2000) {
        diesel::insert_into(bulk_invite_rows::table)
            .values(chunk)
            .execute(conn)?;
    }
    Ok(progress)
}

/// What happened to one row.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A row was tried (invited or refused).
    Row { line: i32, invited: bool },
    /// No row is left: the bulk invite is done.
    Done,
    /// The uploader's daily invite cap lets no row go now: the file is `PAUSED` until `until`, when
    /// the resume tick queues its job again.
    Paused { until: DateTime<Utc> },
}

/// Invites the next waiting row, in its own transaction, and records its outcome there too. Refusals
/// a person could fix (seats, pending invites, rules) are the row's outcome; an outage or a bug
/// rolls back and fails the step, so the job retries the same row. When the uploader's daily cap
/// has no room for the row, the file pauses instead and the row stays waiting.
pub fn step(
    conn: &mut PgConnection,
    bulk_id: Uuid,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<Step> {
    conn.transaction(|conn| {
        let Some(bulk) = bulk_invites::table
            .find(bulk_id)
            .select(BulkInvite::as_select())
            .first(conn)
            .optional()?
        else {
            return Ok(Step::Done);
        };
        // A paused file waits for its moment (a job that runs early, e.g. retried, does nothing).
        if bulk.status == BulkStatus::Paused
            && let Some(until) = bulk.resumes_at
            && until > now
        {
            return Ok(Step::Paused { until });
        }
        let Some(row) = next_row(conn, bulk_id)? else {
            // Rows another replica's step holds are still waiting: that step finishes the file (or
            // pauses it at the cap); marking it done here would strand a row it then leaves waiting.
            if !any_waiting(conn, bulk_id)? {
                mark_done(conn, &bulk, now)?;
            }
            return Ok(Step::Done);
        };
        if bulk.status != BulkStatus::Running {
            mark_running(conn, &bulk, now)?;
        }
        // A savepoint: a refused row rolls back only its own invite attempt.
        let attempt = conn.transaction(|conn| invite_row(conn, &bulk, &row, policy, now));
        // `inviteUsers` checks the daily cap under the site's lock (so two replicas on one file, or
        // the uploader inviting by hand meanwhile, never pass it). When it refuses, the pace decides
        // from the facts: no room for this row now, and the file pauses with the row waiting; room
        // after all, and the refusal was another `RATE_LIMITED` (the recipient cooldown), the row's.
        if let Err(AppError::RateLimited { .. }) = attempt
            && let Some(until) = pause_for_cap(conn, &bulk, policy, now)?
        {
            return Ok(Step::Paused { until });
        }
        let invited = record_outcome(conn, &row, attempt, now)?;
        Ok(Step::Row {
            line: row.line,
            invited,
        })
    })
}

/// The first waiting row of a file, locked for this step; a row another replica's step holds is
/// passed over (`SKIP LOCKED`), so two replicas on one file never try the same row.
fn next_row(conn: &mut PgConnection, bulk_id: Uuid) -> AppResult<Option<BulkRow>> {
    Ok(bulk_invite_rows::table
        .filter(bulk_invite_rows::bulk_id.eq(bulk_id))
        .filter(bulk_invite_rows::status.eq(BulkRowStatus::Pending))
        .order(bulk_invite_rows::line.asc())
        .for_update()
        .skip_locked()
        .select(BulkRow::as_select())
        .first(conn)
        .optional()?)
}

/// Whether any row of the file still waits, including rows another step holds locked.
fn any_waiting(conn: &mut PgConnection, bulk_id: Uuid) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        bulk_invite_rows::table
            .filter(bulk_invite_rows::bulk_id.eq(bulk_id))
            .filter(bulk_invite_rows::status.eq(BulkRowStatus::Pending)),
    ))
    .get_result(conn)?)
}

/// Marks a file with no waiting row left `DONE` (once: a later step finds it done already).
fn mark_done(conn: &mut PgConnection, bulk: &BulkInvite, now: DateTime<Utc>) -> AppResult<()> {
    diesel::update(bulk_invites::table.find(bulk.id))
        .filter(bulk_invites::status.ne(BulkStatus::Done))
        .set((
            bulk_invites::status.eq(BulkStatus::Done),
            bulk_invites::finished_at.eq(now),
            bulk_invites::started_at.eq(bulk.started_at.unwrap_or(now)),
            bulk_invites::resumes_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Marks a queued (or resumed) file `RUNNING`, keeping when it first started.
fn mark_running(conn: &mut PgConnection, bulk: &BulkInvite, now: DateTime<Utc>) -> AppResult<()> {
    diesel::update(bulk_invites::table.find(bulk.id))
        .set((
            bulk_invites::status.eq(BulkStatus::Running),
            bulk_invites::started_at.eq(bulk.started_at.unwrap_or(now)),
            bulk_invites::resumes_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Writes a tried row's outcome and answers whether it was invited: `INVITED` with its invite, or
/// `REFUSED` with the refusal's code and message. An outage or a bug is not an outcome: it fails the
/// step (rolling the row back to waiting), so the job retries the same row.
fn record_outcome(
    conn: &mut PgConnection,
    row: &BulkRow,
    attempt: AppResult<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let (status, code, message, invite_id) = match attempt {
        Ok(invite) => (BulkRowStatus::Invited, None, None, Some(invite)),
        Err(e @ (AppError::Internal(_) | AppError::Unavailable)) => return Err(e),
        Err(e) => (
            BulkRowStatus::Refused,
            Some(e.code().as_str()),
            Some(e.to_string()),
            None,
        ),
    };
    diesel::update(bulk_invite_rows::table.find((row.bulk_id, row.line)))
        .set((
            bulk_invite_rows::status.eq(status),
            bulk_invite_rows::code.eq(code),
            bulk_invite_rows::message.eq(message),
            bulk_invite_rows::invite_id.eq(invite_id),
            bulk_invite_rows::finished_at.eq(now),
        ))
        .execute(conn)?;
    Ok(invite_id.is_some())
}

/// Pauses the file when its uploader's daily cap lets none of its waiting rows go now, and answers
/// until when; `None` (and no write) when the next row may go. The facts are the uploader's invites
/// in the cap's window and the file's waiting rows; [`crate::domain::bulk::pace`] decides. Asked
/// when the cap refused a row, not before each one: the window is read once per pause, whatever the
/// cap.
fn pause_for_cap(
    conn: &mut PgConnection,
    bulk: &BulkInvite,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<Option<DateTime<Utc>>> {
    // Without an uploader the row is refused (`FORBIDDEN`): no cap to wait for.
    let Some(admin) = bulk.uploaded_by else {
        return Ok(None);
    };
    let made = invites::daily_cap_window(conn, admin, now)?;
    let waiting: i64 = bulk_invite_rows::table
        .filter(bulk_invite_rows::bulk_id.eq(bulk.id))
        .filter(bulk_invite_rows::status.eq(BulkRowStatus::Pending))
        .count()
        .get_result(conn)?;
    let pace = crate::domain::bulk::pace(policy.invites_per_admin_per_day, &made, waiting, now);
    let (0, Some(until)) = (pace.now, pace.resumes_at) else {
        return Ok(None);
    };
    diesel::update(bulk_invites::table.find(bulk.id))
        .filter(bulk_invites::status.ne(BulkStatus::Done))
        .set((
            bulk_invites::status.eq(BulkStatus::Paused),
            bulk_invites::resumes_at.eq(until),
            bulk_invites::started_at.eq(bulk.started_at.unwrap_or(now)),
        ))
        .execute(conn)?;
    Ok(Some(until))
}

/// Sets running again every paused file whose moment has come (by the service clock), each with a
/// new job, in one transaction; answers their ids. With several replicas ticking, the update's row
/// lock gives each file to one of them: the other's update finds it no longer `PAUSED`.
pub fn resume_due(conn: &mut PgConnection, now: DateTime<Utc>) -> AppResult<Vec<Uuid>> {
    conn.transaction(|conn| {
        let ids: Vec<Uuid> = diesel::update(bulk_invites::table)
            .filter(bulk_invites::status.eq(BulkStatus::Paused))
            .filter(bulk_invites::resumes_at.le(now))
            .set((
                bulk_invites::status.eq(BulkStatus::Running),
                bulk_invites::resumes_at.eq(None::<DateTime<Utc>>),
            ))
            .returning(bulk_invites::id)
            .get_results(conn)?;
        for id in &ids {
            queue::enqueue_job(
                conn,
                &crate::background::MaintenanceJob {
                    task: crate::background::Task::BulkInvite(*id),
                    trigger: "RESUME".into(),
                },
                0.0,
                None,
            )?;
        }
        Ok(ids)
    })
}

/// One row through `inviteUsers`' own checks, as the person who uploaded the file (who must still be
/// an admin of the site).
fn invite_row(
    conn: &mut PgConnection,
    bulk: &BulkInvite,
    row: &BulkRow,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<Uuid> {
    let caller = match bulk.uploaded_by {
        Some(u) => access::acting_as(conn, u)?,
        None => None,
    }
    .ok_or(AppError::Forbidden)?;
    access::site_access(conn, &caller, bulk.site_id)?.require_admin()?;
    let email = crate::domain::EmailAddress::parse(&row.email)
        .map_err(|m| AppError::invalid("email", m))?;
    let space_id = match &row.space_key {
        Some(key) => Some(
            spaces::table
                .filter(spaces::site_id.eq(bulk.site_id))
                .filter(spaces::key.eq(key))
                .select(spaces::id)
                .first::<Uuid>(conn)
                .optional()?
                .ok_or(AppError::NotFound("Space"))?,
        ),
        None => None,
    };
    let names: Vec<String> = row.group_names.iter().map(|n| n.to_lowercase()).collect();
    let mut group_ids: Vec<Uuid> = groups::table
        .filter(groups::organization_id.eq(bulk.organization_id))
        .filter(groups::name_normalized.eq_any(&names))
        .select(groups::id)
        .load(conn)?;
    if group_ids.len() != names.len() {
        return Err(AppError::NotFound("Group"));
    }
    group_ids.sort();
    let created = invites::invite_users(
        conn,
        &caller,
        NewInvites {
            site_id: bulk.site_id,
            emails: vec![email],
            role: row.role.as_deref().and_then(ProductRole::from_code),
            group_ids,
            space_id,
            personal_message: row.personal_message.clone(),
            expires_in_days: None,
            access_ends_at: None,
            access_days: None,
        },
        policy,
        now,
    )?;
    created
        .first()
        .map(|i| i.id)
        .ok_or_else(|| AppError::internal("an invite batch of one created nothing"))
}

/// A bulk invite of the caller's organization, for an admin of its site.
/// A bulk invite of an organization, with its progress; any other id is `NOT_FOUND`. Who may see it
/// is the policy's decision (its site's administration), asked by the caller.
pub fn in_org(conn: &mut PgConnection, org: Uuid, id: Uuid) -> AppResult<(BulkInvite, Progress)> {
    let bulk = bulk_invites::table
        .find(id)
        .filter(bulk_invites::organization_id.eq(org))
        .select(BulkInvite::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("Bulk invite"))?;
    let progress = progress(conn, id)?;
    Ok((bulk, progress))
}

pub fn progress(conn: &mut PgConnection, id: Uuid) -> AppResult<Progress> {
    let counts: Vec<(BulkRowStatus, i64)> = bulk_invite_rows::table
        .filter(bulk_invite_rows::bulk_id.eq(id))
        .group_by(bulk_invite_rows::status)
        .select((bulk_invite_rows::status, diesel::dsl::count_star()))
        .load(conn)?;
    let mut p = Progress::default();
    for (status, n) in counts {
        p.add(status, n);
    }
    Ok(p)
}

/// A page of rows in file order, optionally only those in one state.
pub fn rows(
    conn: &mut PgConnection,
    id: Uuid,
    status: Option<BulkRowStatus>,
    after_line: Option<i32>,
    limit: i64,
) -> AppResult<Vec<BulkRow>> {
    let mut q = bulk_invite_rows::table
        .filter(bulk_invite_rows::bulk_id.eq(id))
        .filter(bulk_invite_rows::line.gt(after_line.unwrap_or(0)))
        .order(bulk_invite_rows::line.asc())
        .limit(limit)
        .select(BulkRow::as_select())
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(bulk_invite_rows::status.eq(s));
    }
    Ok(q.load(conn)?)
}

/// A page of a site's bulk invites, newest first (keyset on `(created_at, id)`, descending: the page
/// walks `bulk_invites_site` from the cursor and stops at `limit`), each with its progress, read for
/// the whole page in one statement.
pub fn list(
    conn: &mut PgConnection,
    site_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<(BulkInvite, Progress)>> {
    let mut q = bulk_invites::table
        .filter(bulk_invites::site_id.eq(site_id))
        .into_boxed();
    if let Some((at, id)) = after {
        q = q.filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>(
                "(bulk_invites.created_at, bulk_invites.id) < (",
            )
            .bind::<diesel::sql_types::Timestamptz, _>(at)
            .sql(", ")
            .bind::<diesel::sql_types::Uuid, _>(id)
            .sql(")"),
        );
    }
    let files: Vec<BulkInvite> = q
        .order((bulk_invites::created_at.desc(), bulk_invites::id.desc()))
        .limit(limit)
        .select(BulkInvite::as_select())
        .load(conn)?;
    let ids: Vec<Uuid> = files.iter().map(|b| b.id).collect();
    let mut progress = progress_of(conn, &ids)?;
    Ok(files
        .into_iter()
        .map(|b| {
            let p = progress.remove(&b.id).unwrap_or_default();
            (b, p)
        })
        .collect())
}

/// How many bulk invites a site has.
pub fn count(conn: &mut PgConnection, site_id: Uuid) -> AppResult<i64> {
    Ok(bulk_invites::table
        .filter(bulk_invites::site_id.eq(site_id))
        .count()
        .get_result(conn)?)
}

/// The progress of many bulk invites in one statement (a file without rows has none).
fn progress_of(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> AppResult<std::collections::HashMap<Uuid, Progress>> {
    let counts: Vec<(Uuid, BulkRowStatus, i64)> = bulk_invite_rows::table
        .filter(bulk_invite_rows::bulk_id.eq_any(ids))
        .group_by((bulk_invite_rows::bulk_id, bulk_invite_rows::status))
        .select((
            bulk_invite_rows::bulk_id,
            bulk_invite_rows::status,
            diesel::dsl::count_star(),
        ))
        .load(conn)?;
    let mut out: std::collections::HashMap<Uuid, Progress> = std::collections::HashMap::new();
    for (id, status, n) in counts {
        out.entry(id).or_default().add(status, n);
    }
    Ok(out)
}

impl Progress {
    /// Counts `n` rows in `status`.
    fn add(&mut self, status: BulkRowStatus, n: i64) {
        self.total += n;
        match status {
            BulkRowStatus::Pending => self.pending += n,
            BulkRowStatus::Invited => self.invited += n,
            BulkRowStatus::Refused => self.refused += n,
            BulkRowStatus::Invalid => self.invalid += n,
        }
    }
}
