//! External user security: verified domains, the organization's policy with review before change,
//! re-verification (emailed codes and links), and the sweep that reminds people before their period
//! ends. The rules are in `domain::policy`; this module gathers facts and writes.

use crate::auth::tokens::{LinkPurpose, LinkSigner, random_nonce};
use crate::db::schema::*;
use crate::domain::policy::{self, ApiTokenAccess, Effects, ExternalPolicy, PersonFacts, TwoStep};
use crate::domain::status::{
    ChallengeMethod, ChallengePurpose, DeliveryStatus, EmailKind, SweepTrigger, UserStatus,
};
use crate::error::{AppError, AppResult};
use crate::store::access::{Caller, policy_from_row};
use crate::store::audit::{self, Audit};
use crate::store::changes::end_sessions;
use crate::store::invites::DeliveryPolicy;
use crate::store::models::{LoginChallenge, ReverificationLink, User};
use crate::store::queue;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Reviews of a policy change stay usable this long.
pub const REVIEW_MINUTES: i64 = 30;
/// Emailed re-verification links stay usable this long (or until used or superseded).
pub const LINK_DAYS: i64 = 14;
/// The sweep's batch size: memory stays bounded whatever the population.
pub const SWEEP_BATCH: i64 = 1000;

fn require_org_admin(caller: &Caller) -> AppResult<()> {
    if caller.org_admin {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

/// A domain as stored: lower case, no surrounding dots or spaces, a plausible host name.
pub fn parse_domain(raw: &str) -> AppResult<String> {
    let d = raw.trim().trim_matches('.').to_lowercase();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(d)
    } else {
        Err(AppError::invalid(
            "domain",
            "give a domain name such as example.com",
        ))
    }
}

/// Adds or removes a verified domain (organization admins); people of that domain become internal
/// or external accordingly.
pub fn set_domain(
    conn: &mut PgConnection,
    caller: &Caller,
    domain: &str,
    verified: bool,
    now: DateTime<Utc>,
) -> AppResult<Vec<String>> {
    require_org_admin(caller)?;
    let org = caller.user.organization_id;
    conn.transaction(|conn| {
        // Exclusive: no access change copies `external` while it flips.
        crate::store::changes::lock_org(conn, org, crate::store::changes::Reach::Organization)?;
        let changed = if verified {
            diesel::insert_into(verified_domains::table)
                .values((
                    verified_domains::organization_id.eq(org),
                    verified_domains::domain.eq(domain),
                    verified_domains::created_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(conn)?
        } else {
            diesel::delete(verified_domains::table.find((org, domain))).execute(conn)?
        };
        if changed > 0 {
            crate::store::changes::state::domain_changed(conn, org, domain)?;
            let action = if verified {
                "domain.add"
            } else {
                "domain.remove"
            };
            audit::record(
                conn,
                Audit::new(caller.user.organization_id, caller.user.id, action, now)
                    .target("domain", domain),
            )?;
        }
        crate::store::org::verified_domains(conn, org)
    })
}

/// Whether a person is external, and their organization's policy.
pub fn standing_of(conn: &mut PgConnection, user: &User) -> AppResult<(bool, ExternalPolicy)> {
    let domains = crate::store::org::verified_domains(conn, user.organization_id)?;
    Ok((
        policy::is_external(&user.email_domain, &domains),
        policy(conn, user.organization_id)?,
    ))
}

/// The organization's policy (defaults when it never set one).
pub fn policy(conn: &mut PgConnection, org: Uuid) -> AppResult<ExternalPolicy> {
    let row: Option<(TwoStep, i32, ApiTokenAccess, Option<i32>)> = external_user_policies::table
        .find(org)
        .select((
            external_user_policies::two_step,
            external_user_policies::reverification_interval_minutes,
            external_user_policies::api_token_access,
            external_user_policies::session_idle_timeout_minutes,
        ))
        .first(conn)
        .optional()?;
    Ok(match row {
        Some((t, i, a, idle)) => policy_from_row(Some(t), Some(i), Some(a), idle),
        None => ExternalPolicy::default(),
    })
}

#[derive(QueryableByName)]
struct FactsRow {
    #[diesel(embed)]
    user: User,
    #[diesel(sql_type = Bool)]
    personal_two_step: bool,
    #[diesel(sql_type = Bool)]
    active_api_tokens: bool,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    oldest_seen: Option<DateTime<Utc>>,
}

/// Every active external user of an organization with the facts a policy change needs.
fn external_people(
    conn: &mut PgConnection,
    org: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Vec<(User, PersonFacts)>> {
    let rows: Vec<FactsRow> = diesel::sql_query(
        "SELECT u.id, u.organization_id, u.email, u.email_normalized, u.display_name, u.password_hash,
                u.status, u.invited_by, u.two_step_required, u.created_at, u.verified_at, u.last_active_at,
                u.email_domain,
           (u.two_step_required OR EXISTS (SELECT 1 FROM totp_credentials t
              WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL)) AS personal_two_step,
           EXISTS (SELECT 1 FROM api_tokens a WHERE a.user_id = u.id AND a.revoked_at IS NULL
              AND (a.expires_at IS NULL OR a.expires_at > $2)) AS active_api_tokens,
           (SELECT min(s.last_seen_at) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL
              AND s.expires_at > $2) AS oldest_seen
         FROM users u
         WHERE u.organization_id = $1 AND u.status = $3
           AND u.external
         ORDER BY u.email_normalized, u.id",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<Timestamptz, _>(now)
    .bind::<Text, _>(UserStatus::Active)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let facts = PersonFacts {
                verified_at: r.user.verified_at,
                created_at: r.user.created_at,
                personal_two_step: r.personal_two_step,
                active_api_tokens: r.active_api_tokens,
                longest_session_idle: r.oldest_seen.map(|t| now - t),
            };
            (r.user, facts)
        })
        .collect())
}

/// Who a change from the current policy to `new` affects, and how.
fn affected(
    conn: &mut PgConnection,
    org: Uuid,
    new: &ExternalPolicy,
    now: DateTime<Utc>,
) -> AppResult<Vec<(User, Effects)>> {
    let old = policy(conn, org)?;
    Ok(external_people(conn, org, now)?
        .into_iter()
        .map(|(u, f)| {
            let e = policy::effects(&old, new, &f, now);
            (u, e)
        })
        .filter(|(_, e)| e.any())
        .collect())
}

/// A digest of who is affected and how: a review is stale once it changes.
fn fingerprint(people: &[(User, Effects)]) -> Vec<u8> {
    let mut h = Sha256::new();
    for (u, e) in people {
        h.update(u.id.as_bytes());
        h.update([
            u8::from(e.must_reverify),
            u8::from(e.must_use_two_step),
            u8::from(e.tokens_stop),
            u8::from(e.sessions_end),
        ]);
    }
    h.finalize().to_vec()
}

/// A stored review: the policy, the affected set's fingerprint, expiry and use.
type ReviewRow = (
    serde_json::Value,
    Vec<u8>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

/// A preview of a policy change.
pub struct Review {
    pub id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub people: Vec<(User, Effects)>,
}

pub fn preview(
    conn: &mut PgConnection,
    caller: &Caller,
    new: &ExternalPolicy,
    now: DateTime<Utc>,
) -> AppResult<Review> {
    require_org_admin(caller)?;
    validate(new)?;
    let org = caller.user.organization_id;
    conn.transaction(|conn| {
        let people = affected(conn, org, new, now)?;
        let expires_at = now + Duration::minutes(REVIEW_MINUTES);
        let id: Uuid = diesel::insert_into(policy_reviews::table)
            .values((
                policy_reviews::organization_id.eq(org),
                policy_reviews::policy.eq(serde_json::to_value(new).map_err(AppError::internal)?),
                policy_reviews::fingerprint.eq(fingerprint(&people)),
                policy_reviews::created_by.eq(caller.user.id),
                policy_reviews::created_at.eq(now),
                policy_reviews::expires_at.eq(expires_at),
            ))
            .returning(policy_reviews::id)
            .get_result(conn)?;
        Ok(Review {
            id,
            expires_at,
            people,
        })
    })
}

fn validate(p: &ExternalPolicy) -> AppResult<()> {
    p.validate().map_err(|(f, m)| AppError::invalid(f, m))
}

/// Applies a policy, only with a current review of exactly this policy whose affected set has not
/// changed since (`REVIEW_STALE` otherwise, and nothing changes).
pub fn update(
    conn: &mut PgConnection,
    caller: &Caller,
    new: &ExternalPolicy,
    review_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<ExternalPolicy> {
    require_org_admin(caller)?;
    validate(new)?;
    let org = caller.user.organization_id;
    conn.transaction(|conn| {
        // One policy change at a time per organization.
        organizations::table
            .find(org)
            .for_update()
            .select(organizations::id)
            .first::<Uuid>(conn)?;
        let Some((reviewed, print, expires_at, used_at)) = locked_review(conn, org, review_id)?
        else {
            return Err(AppError::ReviewStale);
        };
        let reviewed = serde_json::from_value::<ExternalPolicy>(reviewed).ok();
        if !policy::review_applies(reviewed.as_ref(), new, used_at.is_some(), expires_at, now) {
            return Err(AppError::ReviewStale);
        }
        if fingerprint(&affected(conn, org, new, now)?) != print {
            return Err(AppError::ReviewStale);
        }
        let old = policy(conn, org)?;
        write_policy(conn, org, new, caller.user.id, now)?;
        diesel::update(policy_reviews::table.find(review_id))
            .set(policy_reviews::used_at.eq(now))
            .execute(conn)?;
        audit::record_all(conn, policy_events(caller, &old, new, now))?;
        Ok(*new)
    })
}

/// A review of the organization's, locked until the change commits (so it is used once).
fn locked_review(
    conn: &mut PgConnection,
    org: Uuid,
    review_id: Uuid,
) -> AppResult<Option<ReviewRow>> {
    Ok(policy_reviews::table
        .find(review_id)
        .filter(policy_reviews::organization_id.eq(org))
        .for_update()
        .select((
            policy_reviews::policy,
            policy_reviews::fingerprint,
            policy_reviews::expires_at,
            policy_reviews::used_at,
        ))
        .first(conn)
        .optional()?)
}

/// Stores the organization's policy (its first, or in place of the one it had), with who set it.
fn write_policy(
    conn: &mut PgConnection,
    org: Uuid,
    new: &ExternalPolicy,
    by: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let (two_step, tokens) = (new.two_step, new.api_token_access);
    diesel::insert_into(external_user_policies::table)
        .values((
            external_user_policies::organization_id.eq(org),
            external_user_policies::two_step.eq(two_step),
            external_user_policies::reverification_interval_minutes
                .eq(new.reverification_interval_minutes),
            external_user_policies::api_token_access.eq(tokens),
            external_user_policies::session_idle_timeout_minutes
                .eq(new.session_idle_timeout_minutes),
            external_user_policies::updated_at.eq(now),
            external_user_policies::updated_by.eq(by),
        ))
        .on_conflict(external_user_policies::organization_id)
        .do_update()
        .set((
            external_user_policies::two_step.eq(two_step),
            external_user_policies::reverification_interval_minutes
                .eq(new.reverification_interval_minutes),
            external_user_policies::api_token_access.eq(tokens),
            external_user_policies::session_idle_timeout_minutes
                .eq(new.session_idle_timeout_minutes),
            external_user_policies::updated_at.eq(now),
            external_user_policies::updated_by.eq(by),
        ))
        .execute(conn)?;
    Ok(())
}

/// The audit events of a policy change: the change itself, and one that says API tokens were
/// blocked or allowed again when that changed (the event an auditor looks for).
fn policy_events(
    caller: &Caller,
    old: &ExternalPolicy,
    new: &ExternalPolicy,
    now: DateTime<Utc>,
) -> Vec<Audit> {
    let org = caller.user.organization_id;
    let mut events = vec![
        Audit::new(
            caller.user.organization_id,
            caller.user.id,
            "policy.update",
            now,
        )
        .target("organization", org)
        .before(json!(old))
        .after(json!(new)),
    ];
    if old.api_token_access != new.api_token_access {
        let action = match new.api_token_access {
            ApiTokenAccess::Blocked => "policy.apiTokensBlocked",
            ApiTokenAccess::Allowed => "policy.apiTokensAllowed",
        };
        events.push(
            Audit::new(caller.user.organization_id, caller.user.id, action, now)
                .target("organization", org),
        );
    }
    events
}

/// Ends every session of the organization's external users (organization admins).
pub fn reset_sessions(
    conn: &mut PgConnection,
    caller: &Caller,
    now: DateTime<Utc>,
) -> AppResult<usize> {
    require_org_admin(caller)?;
    let org = caller.user.organization_id;
    conn.transaction(|conn| {
        let ids: Vec<Uuid> = external_people(conn, org, now)?
            .into_iter()
            .map(|(u, _)| u.id)
            .collect();
        let n = end_sessions(conn, &ids, now)?;
        audit::record(
            conn,
            Audit::new(
                caller.user.organization_id,
                caller.user.id,
                "externalSessions.reset",
                now,
            )
            .target("organization", org)
            .after(json!({ "sessionsEnded": n, "people": ids.len() })),
        )?;
        Ok(n)
    })
}

fn verified(conn: &mut PgConnection, user: &User, how: &str, now: DateTime<Utc>) -> AppResult<()> {
    diesel::update(users::table.find(user.id))
        .set(users::verified_at.eq(now))
        .execute(conn)?;
    audit::record(
        conn,
        Audit::new(user.organization_id, user.id, "user.reverify", now)
            .target("user", user.id)
            .before(json!({ "verifiedAt": user.verified_at }))
            .after(json!({ "verifiedAt": now, "by": how })),
    )
}

/// Emails the caller a code to prove they still own their address.
pub fn request_code(
    conn: &mut PgConnection,
    user: &User,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<DateTime<Utc>> {
    conn.transaction(|conn| {
        // Earlier open codes stop working: only the newest email counts.
        diesel::update(
            login_challenges::table
                .filter(login_challenges::user_id.eq(user.id))
                .filter(login_challenges::purpose.eq(ChallengePurpose::Reverify))
                .filter(login_challenges::consumed_at.is_null()),
        )
        .set(login_challenges::consumed_at.eq(now))
        .execute(conn)?;
        let expires_at = now + Duration::minutes(crate::store::signin::CODE_LIFETIME_MINUTES);
        let nonce = random_nonce().to_vec();
        let id: Uuid = diesel::insert_into(login_challenges::table)
            .values((
                login_challenges::user_id.eq(user.id),
                login_challenges::method.eq(ChallengeMethod::Email),
                login_challenges::purpose.eq(ChallengePurpose::Reverify),
                login_challenges::code_nonce.eq(&nonce),
                login_challenges::created_at.eq(now),
                login_challenges::expires_at.eq(expires_at),
            ))
            .returning(login_challenges::id)
            .get_result(conn)?;
        crate::store::signin::queue_code_email(conn, user, id, &nonce, expires_at, policy, now)?;
        Ok(expires_at)
    })
}

/// Completes re-verification with the newest emailed code: a new period starts now.
pub fn complete_code(
    conn: &mut PgConnection,
    signer: &LinkSigner,
    user: &User,
    code: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    conn.transaction::<AppResult<()>, AppError, _>(|conn| {
        let ch: Option<LoginChallenge> = login_challenges::table
            .filter(login_challenges::user_id.eq(user.id))
            .filter(login_challenges::purpose.eq(ChallengePurpose::Reverify))
            .filter(login_challenges::consumed_at.is_null())
            .filter(login_challenges::expires_at.gt(now))
            .filter(login_challenges::failed_attempts.lt(crate::store::signin::MAX_CODE_ATTEMPTS))
            .order(login_challenges::created_at.desc())
            .for_update()
            .select(LoginChallenge::as_select())
            .first(conn)
            .optional()?;
        let Some(ch) = ch else {
            return Ok(Err(AppError::CodeInvalid));
        };
        if !signer.code_ok(ch.id, &ch.code_nonce, code) {
            diesel::update(login_challenges::table.find(ch.id))
                .set(login_challenges::failed_attempts.eq(login_challenges::failed_attempts + 1))
                .execute(conn)?;
            return Ok(Err(AppError::CodeInvalid));
        }
        diesel::update(login_challenges::table.find(ch.id))
            .set(login_challenges::consumed_at.eq(now))
            .execute(conn)?;
        verified(conn, user, "code", now)?;
        Ok(Ok(()))
    })?
}

/// The link a token names, if still usable; anything else is `LINK_INVALID`.
pub fn open_link(
    conn: &mut PgConnection,
    signer: &LinkSigner,
    token: &str,
    now: DateTime<Utc>,
) -> AppResult<(ReverificationLink, User)> {
    let (id, tag) = LinkSigner::parse(LinkPurpose::Reverify, token).ok_or(AppError::LinkInvalid)?;
    let link: ReverificationLink = reverification_links::table
        .find(id)
        .select(ReverificationLink::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::LinkInvalid)?;
    let user: User = users::table
        .find(link.user_id)
        .select(User::as_select())
        .first(conn)?;
    if !signer.verify(LinkPurpose::Reverify, id, &link.token_nonce, &tag)
        || link.used_at.is_some()
        || link.expires_at <= now
        || !user.is_active()
    {
        return Err(AppError::LinkInvalid);
    }
    Ok((link, user))
}

/// Uses an emailed link (once): a new period starts now.
pub fn use_link(
    conn: &mut PgConnection,
    signer: &LinkSigner,
    token: &str,
    now: DateTime<Utc>,
) -> AppResult<User> {
    conn.transaction(|conn| {
        let (link, user) = open_link(conn, signer, token, now)?;
        let n = diesel::update(
            reverification_links::table
                .find(link.id)
                .filter(reverification_links::used_at.is_null()),
        )
        .set(reverification_links::used_at.eq(now))
        .execute(conn)?;
        if n == 0 {
            return Err(AppError::LinkInvalid);
        }
        verified(conn, &user, "link", now)?;
        Ok(user)
    })
}

#[derive(QueryableByName)]
struct BatchRow {
    #[diesel(sql_type = Nullable<SqlUuid>)]
    last_id: Option<Uuid>,
    #[diesel(sql_type = BigInt)]
    emailed: i64,
    /// `[{ "id", "org", "until" }]`: whom this batch reminded (for the audit trail).
    #[diesel(sql_type = diesel::sql_types::Json)]
    reminded: serde_json::Value,
}

/// One `user.reverificationDue` audit event per person reminded (and so the
/// `reverification.due` webhook), in the batch's transaction.
fn record_reminded(
    conn: &mut PgConnection,
    reminded: &serde_json::Value,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let events = reminded
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let id = r["id"].as_str()?;
            let until: DateTime<Utc> = r["until"].as_str()?.parse().ok()?;
            let org: Uuid = r["org"].as_str()?.parse().ok()?;
            Some(
                Audit::new(org, None, "user.reverificationDue", now)
                    .target("user", id)
                    .after(json!({ "verifiedUntil": until })),
            )
        })
        .collect();
    audit::record_all(conn, events)
}

/// Emails one batch of external users whose period ends within the lead time and who were not yet
/// reminded for this period; returns the last user id looked at and how many were emailed. Rows
/// another sweep holds are skipped (it is emailing them), so concurrent sweeps never double-send.
fn sweep_batch(
    conn: &mut PgConnection,
    after: Uuid,
    lead_minutes: Option<i32>,
    message_id_domain: &str,
    now: DateTime<Utc>,
) -> AppResult<(Option<Uuid>, i64)> {
    let row: BatchRow = conn.transaction::<_, AppError, _>(|conn| {
        let row: BatchRow = diesel::sql_query(
            "WITH due AS (
               SELECT u.id, u.organization_id, u.email, coalesce(u.verified_at, u.created_at) AS period,
                      coalesce(u.verified_at, u.created_at)
                        + make_interval(mins => coalesce(p.reverification_interval_minutes, 43200)) AS until
               FROM users u
               LEFT JOIN external_user_policies p ON p.organization_id = u.organization_id
               WHERE u.id > $1 AND u.status = $9
                 AND u.reverify_notified_for IS DISTINCT FROM coalesce(u.verified_at, u.created_at)
                 AND coalesce(u.verified_at, u.created_at)
                     + make_interval(mins => coalesce(p.reverification_interval_minutes, 43200))
                     - make_interval(mins => coalesce($3, LEAST(4320, coalesce(p.reverification_interval_minutes, 43200) / 5)))
                     <= $2
                 AND u.external
               ORDER BY u.id
               LIMIT $4
               FOR UPDATE OF u SKIP LOCKED
             ),
             links AS (
               INSERT INTO reverification_links (user_id, token_nonce, created_at, expires_at)
               SELECT id, uuid_send(gen_random_uuid()), $2, $2 + make_interval(days => $5) FROM due
               RETURNING id, user_id, token_nonce
             ),
             marked AS (
               UPDATE users u SET reverify_notified_for = due.period FROM due WHERE u.id = due.id RETURNING u.id
             ),
             deliveries AS (
               INSERT INTO email_deliveries (organization_id, kind, reverify_id, token_nonce, recipient, status,
                                             message_id, created_at, give_up_at)
               SELECT due.organization_id, $10, l.id, l.token_nonce, due.email, $11,
                      '<reverify.' || replace(l.id::text, '-', '') || '@' || $6 || '>', $2, $2 + interval '1 day'
               FROM links l JOIN due ON due.id = l.user_id
               RETURNING id
             ),
             jobs AS (
               INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
               SELECT apalis.generate_ulid(), $7, convert_to(json_build_object('delivery_id', d.id)::text, 'UTF8'),
                      'Pending', 0, $8, now(), 0
               FROM deliveries d
               RETURNING 1
             )
             SELECT (SELECT id FROM due ORDER BY id DESC LIMIT 1) AS last_id,
                    (SELECT count(*) FROM jobs) + 0 * (SELECT count(*) FROM marked) AS emailed,
                    (SELECT coalesce(json_agg(json_build_object('id', id, 'org', organization_id,
                                                                'until', until)), '[]'::json)
                     FROM due) AS reminded",
        )
        .bind::<SqlUuid, _>(after)
        .bind::<Timestamptz, _>(now)
        .bind::<Nullable<Integer>, _>(lead_minutes)
        .bind::<BigInt, _>(SWEEP_BATCH)
        .bind::<Integer, _>(LINK_DAYS as i32)
        .bind::<Text, _>(message_id_domain)
        .bind::<Text, _>(queue::EMAIL_QUEUE)
        .bind::<Integer, _>(queue::MAX_ATTEMPTS)
        .bind::<Text, _>(UserStatus::Active)
        .bind::<Text, _>(EmailKind::Reverify)
        .bind::<Text, _>(DeliveryStatus::Queued)
        .get_result(conn)?;
        record_reminded(conn, &row.reminded, now)?;
        Ok(row)
    })?;
    Ok((row.last_id, row.emailed))
}

/// Runs a whole sweep in batches and records it; returns how many people were emailed.
pub fn sweep(
    conn: &mut PgConnection,
    trigger: SweepTrigger,
    lead_minutes: Option<i32>,
    message_id_domain: &str,
    now: DateTime<Utc>,
) -> AppResult<i64> {
    let run: i64 = diesel::insert_into(reverification_sweeps::table)
        .values((
            reverification_sweeps::trigger.eq(trigger),
            reverification_sweeps::started_at.eq(now),
        ))
        .returning(reverification_sweeps::id)
        .get_result(conn)?;
    let mut after = Uuid::nil();
    let mut total = 0;
    loop {
        let (last, n) = sweep_batch(conn, after, lead_minutes, message_id_domain, now)?;
        total += n;
        match last {
            Some(id) => after = id,
            None => break,
        }
    }
    diesel::update(reverification_sweeps::table.find(run))
        .set((
            reverification_sweeps::finished_at.eq(Utc::now().max(now)),
            reverification_sweeps::emailed.eq(total as i32),
        ))
        .execute(conn)?;
    Ok(total)
}

/// Queues a sweep to run on a worker. With a key, a second request for the same key is ignored (a
/// scheduler tick fired by every replica runs once).
pub fn enqueue_sweep(
    conn: &mut PgConnection,
    trigger: SweepTrigger,
    key: Option<&str>,
) -> AppResult<bool> {
    queue::enqueue_job(
        conn,
        &crate::background::MaintenanceJob {
            task: crate::background::Task::Sweep,
            trigger: trigger.as_str().to_string(),
        },
        0.0,
        key,
    )
}

/// What admins see of the scheduler.
pub struct SweepStatus {
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_run_emailed: Option<i32>,
    /// External users of the organization whose verification period has ended.
    pub pending: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

pub fn sweep_status(
    conn: &mut PgConnection,
    org: Uuid,
    now: DateTime<Utc>,
) -> AppResult<SweepStatus> {
    let last: Option<(DateTime<Utc>, i32)> = reverification_sweeps::table
        .filter(reverification_sweeps::finished_at.is_not_null())
        .order(reverification_sweeps::id.desc())
        .select((
            reverification_sweeps::started_at,
            reverification_sweeps::emailed,
        ))
        .first(conn)
        .optional()?;
    let interval = policy(conn, org)?.reverification_interval_minutes;
    let pending: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM users u
         WHERE u.organization_id = $1 AND u.status = $4
           AND coalesce(u.verified_at, u.created_at) + make_interval(mins => $2) <= $3
           AND u.external",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<Integer, _>(interval)
    .bind::<Timestamptz, _>(now)
    .bind::<Text, _>(UserStatus::Active)
    .get_result(conn)?;
    Ok(SweepStatus {
        last_run_at: last.map(|l| l.0),
        last_run_emailed: last.map(|l| l.1),
        pending: pending.n,
    })
}

/// One row of the external users export.
#[derive(QueryableByName, Debug)]
pub struct ExportRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub email: String,
    #[diesel(sql_type = Text)]
    pub email_normalized: String,
    #[diesel(sql_type = Text)]
    pub display_name: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_active_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub verified_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Bool)]
    pub two_step_required: bool,
    #[diesel(sql_type = Bool)]
    pub authenticator: bool,
    /// `Site: ROLE; ...` for every site where they have access.
    #[diesel(sql_type = Text)]
    pub roles: String,
    /// `Site: SPACEKEY; ...`
    #[diesel(sql_type = Text)]
    pub spaces: String,
}

/// A page of the organization's external users for the export, by email (keyset on `(email, id)`).
pub fn export_page(
    conn: &mut PgConnection,
    org: Uuid,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> AppResult<Vec<ExportRow>> {
    let (after_email, after_id) = after.map_or((None, None), |(e, i)| (Some(e), Some(i)));
    Ok(diesel::sql_query(
        "SELECT u.id, u.email, u.email_normalized, u.display_name, u.last_active_at, u.verified_at,
                u.created_at, u.two_step_required,
           EXISTS (SELECT 1 FROM totp_credentials t WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL) AS authenticator,
           coalesce((
             SELECT string_agg(s.name || ': ' || CASE m.role WHEN 1 THEN 'GUEST' WHEN 2 THEN 'USER' ELSE 'PRODUCT_ADMIN' END,
                               '; ' ORDER BY s.name)
             FROM site_members m JOIN sites s ON s.id = m.site_id
             WHERE m.user_id = u.id
           ), '') AS roles,
           coalesce((
             SELECT string_agg(st.name || ': ' || sp.key, '; ' ORDER BY st.name)
             FROM site_members m JOIN spaces sp ON sp.id = m.guest_space_id JOIN sites st ON st.id = m.site_id
             WHERE m.user_id = u.id
           ), '') AS spaces
         FROM users u
         WHERE u.organization_id = $1 AND u.external
           AND ($2::text IS NULL OR (u.email_normalized, u.id) > ($2, $3))
         ORDER BY u.email_normalized, u.id
         LIMIT $4",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<Nullable<Text>, _>(after_email)
    .bind::<Nullable<SqlUuid>, _>(after_id)
    .bind::<BigInt, _>(limit)
    .load(conn)?)
}
