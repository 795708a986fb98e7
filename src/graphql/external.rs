//! External user security: verified domains, the policy (previewed, then applied with its review),
//! re-verification, the scheduler's status, and resetting external users' sessions.

use super::types::{Organization, Page, User};
use super::{caller, caller_to_reverify, client_address, state};
use crate::domain::domains::DomainMode;
use crate::domain::policy::{self, ApiTokenAccess, ExternalPolicy, TwoStep};
use crate::domain::status::SweepTrigger;
use crate::error::{AppError, AppResult};
use crate::store::external;
use crate::store::guests::{GuestKey, GuestOrder};
use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// The organization's policy for external users.
#[derive(SimpleObject)]
pub struct ExternalUserSecurity {
    /// `REQUIRED`: every external user gives an emailed code at sign-in.
    pub two_step_verification: TwoStep,
    /// Minutes between re-verifications (15 to 43,200).
    pub reverification_interval: i32,
    /// `BLOCKED`: external users' API tokens stop working (their requests answer
    /// `API_TOKENS_BLOCKED`) and they cannot create new ones.
    pub api_token_access: ApiTokenAccess,
    /// External users' sessions end after this many idle minutes (null: the global idle timeout).
    pub session_idle_timeout_minutes: Option<i32>,
}

impl From<ExternalPolicy> for ExternalUserSecurity {
    fn from(p: ExternalPolicy) -> Self {
        Self {
            two_step_verification: p.two_step,
            reverification_interval: p.reverification_interval_minutes,
            api_token_access: p.api_token_access,
            session_idle_timeout_minutes: p.session_idle_timeout_minutes,
        }
    }
}

/// A whole policy: every field is given, so a review covers exactly what will apply.
#[derive(InputObject)]
pub struct ExternalUserSecurityInput {
    /// `REQUIRED`: every external user gives a code (emailed, or from their authenticator app) at
    /// sign-in.
    pub two_step_verification: TwoStep,
    /// Minutes between re-verifications, 15 to 43,200 (30 days); `INVALID_INPUT` otherwise.
    pub reverification_interval: i32,
    /// `BLOCKED`: external users' API tokens stop working and they cannot create new ones.
    pub api_token_access: ApiTokenAccess,
    /// External users' sessions end after this many idle minutes, 5 to 43,200 (`INVALID_INPUT`
    /// otherwise); null: only the global idle timeout applies.
    pub session_idle_timeout_minutes: Option<i32>,
}

impl ExternalUserSecurityInput {
    fn policy(&self) -> ExternalPolicy {
        ExternalPolicy {
            two_step: self.two_step_verification,
            reverification_interval_minutes: self.reverification_interval,
            api_token_access: self.api_token_access,
            session_idle_timeout_minutes: self.session_idle_timeout_minutes,
        }
    }
}

/// The policy to apply, exactly as previewed, with the review the preview gave. Every field must
/// equal the previewed one (`REVIEW_STALE` otherwise).
#[derive(InputObject)]
pub struct UpdateExternalUserSecurityInput {
    /// `REQUIRED`: every external user gives a code (emailed, or from their authenticator app) at
    /// sign-in.
    pub two_step_verification: TwoStep,
    /// Minutes between re-verifications, 15 to 43,200 (30 days); `INVALID_INPUT` otherwise.
    pub reverification_interval: i32,
    /// `BLOCKED`: external users' API tokens stop working and they cannot create new ones.
    pub api_token_access: ApiTokenAccess,
    /// External users' sessions end after this many idle minutes, 5 to 43,200 (`INVALID_INPUT`
    /// otherwise); null: only the global idle timeout applies.
    pub session_idle_timeout_minutes: Option<i32>,
    /// From `previewExternalUserSecurityChange` of exactly this policy, less than 30 minutes ago.
    pub review_id: ID,
}

#[derive(Clone)]
pub struct AffectedPerson {
    user: crate::store::models::User,
    effects: policy::Effects,
}

/// One external user a policy change affects, and how (at least one of the effects is true).
#[Object]
impl AffectedPerson {
    /// The person.
    async fn user(&self) -> User {
        User::new(self.user.clone())
    }
    /// Not due under the current policy but due under the new one: must verify again at their next
    /// request.
    async fn must_reverify(&self) -> bool {
        self.effects.must_reverify
    }
    /// Will have to give a code at sign-in.
    async fn must_use_two_step(&self) -> bool {
        self.effects.must_use_two_step
    }
    /// Their API tokens stop working.
    async fn tokens_stop(&self) -> bool {
        self.effects.tokens_stop
    }
    /// Some of their sessions end (idle longer than the new timeout).
    async fn sessions_end(&self) -> bool {
        self.effects.sessions_end
    }
}

/// How many people a policy change affects, in all and by effect (one person may count under
/// several effects).
#[derive(SimpleObject, Default)]
pub struct AffectedCounts {
    /// People affected in any way (`people`'s `totalCount`).
    pub people: i64,
    /// People who must verify their address again at their next request.
    pub must_reverify: i64,
    /// People who will have to give a code at sign-in.
    pub must_use_two_step: i64,
    /// People whose API tokens stop working.
    pub tokens_stop: i64,
    /// People some of whose sessions end.
    pub sessions_end: i64,
}

/// What a policy change would do, person by person.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ExternalUserSecurityPreview {
    /// Pass it to `updateExternalUserSecurity` with the same policy.
    pub review_id: ID,
    /// When the review stops being usable (30 minutes after the preview).
    pub expires_at: DateTime<Utc>,
    /// How many people the change affects, by effect (over everyone, not one page of `people`).
    pub counts: AffectedCounts,
    /// The preview's affected people, by email: computed in memory by the preview (whose review
    /// keeps only their fingerprint), paged here by position.
    #[graphql(skip)]
    pub affected: Vec<AffectedPerson>,
}

#[ComplexObject]
impl ExternalUserSecurityPreview {
    /// Every active external user the change affects, by email (then id); people it leaves alone are
    /// not listed. The preview works out who is affected in memory, to fingerprint its review, and
    /// does not store them: this list is that in-memory list, paged by position. A cursor is a
    /// position in the list of the preview that gave it: to read further, preview the same policy
    /// again with `after`; if who is affected changed in between, positions may have moved (and the
    /// earlier review is stale anyway).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn people(
        &self,
        #[graphql(
            desc = "How many people to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
    ) -> AppResult<Page<AffectedPerson>> {
        let (limit, after) = super::page::<u64>(first, after)?;
        let start = after.map_or(0, |p| p.saturating_add(1));
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let rows: Vec<(u64, AffectedPerson)> = self
            .affected
            .iter()
            .enumerate()
            .skip(start)
            .take(limit as usize + 1)
            .map(|(i, p)| (i as u64, p.clone()))
            .collect();
        Ok(super::query::paginate(
            rows,
            limit,
            self.affected.len() as i64,
            |(i, _)| *i,
            |(_, p)| p,
        ))
    }
}

/// The re-verification scheduler, as admins see it.
#[derive(SimpleObject)]
pub struct ReverificationStatus {
    /// When the last completed sweep started (scheduled or run with `runReverificationSweep`);
    /// null: none has completed yet. The sweep serves every organization of the service.
    pub last_run_at: Option<DateTime<Utc>>,
    /// When the schedule fires next (null when the configured schedule cannot be read).
    pub next_run_at: Option<DateTime<Utc>>,
    /// How many reminder emails that sweep queued, counting every organization it served; null: no
    /// sweep has completed yet.
    pub last_run_emailed: Option<i32>,
    /// External users of the organization whose verification period has ended.
    pub pending: i64,
}

/// The re-verification code `requestReverificationCode` emailed to the caller's address.
#[derive(SimpleObject)]
pub struct RequestReverificationCodePayload {
    /// When the emailed code stops working (10 minutes after the request).
    pub expires_at: DateTime<Utc>,
}

/// The code `requestReverificationCode` emailed.
#[derive(InputObject)]
pub struct CompleteReverificationInput {
    /// The code from the newest email (earlier ones stop working). A wrong, expired or used code is
    /// `CODE_INVALID`; after 5 wrong codes, request a new one.
    pub code: String,
}

/// The caller's new verification period, after `completeReverification`.
#[derive(SimpleObject)]
pub struct CompleteReverificationPayload {
    /// When the caller must verify again: now plus the policy's re-verification interval.
    pub verified_until: DateTime<Utc>,
}

/// One email domain of the organization.
#[derive(InputObject)]
pub struct DomainInput {
    /// A domain name such as `example.com`, without wildcards (letter case and surrounding dots or
    /// spaces do not matter); anything else is `INVALID_INPUT`.
    pub domain: String,
}

/// How many sessions `resetExternalUserSessions` ended.
#[derive(SimpleObject)]
pub struct ResetExternalUserSessionsPayload {
    /// Sessions ended, over every active external user of the organization.
    pub count: i64,
}

/// Which email domains may be invited as guests.
#[derive(SimpleObject)]
pub struct GuestDomainRules {
    /// `ALLOW`: only addresses matching `domains` may be invited as guests; `BLOCK`: any but those;
    /// `NONE`: no rule (`domains` is empty).
    pub mode: DomainMode,
    /// `example.com`, or `*.example.com` for its subdomains.
    pub domains: Vec<String>,
}

/// The organization's new guest domain rules, replacing the current ones.
#[derive(InputObject)]
pub struct SetGuestDomainRulesInput {
    /// `ALLOW`: only these domains; `BLOCK`: any but these; `NONE`: no rule (and no domains).
    pub mode: DomainMode,
    /// Patterns: `example.com`, or `*.example.com` for its subdomains (not `example.com` itself).
    /// At most 500; none with `NONE` and at least one with `ALLOW` (`INVALID_INPUT` otherwise).
    /// Empty when left out.
    #[graphql(default)]
    pub domains: Vec<String>,
}

#[derive(Default)]
pub struct ExternalQuery;

#[Object]
impl ExternalQuery {
    /// The organization's external user security policy (organization admins).
    async fn external_user_security(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<Option<ExternalUserSecurity>> {
        let who = caller(ctx).await?;
        if !who.org_admin {
            return Err(AppError::Forbidden);
        }
        Ok(Some(who.policy.into()))
    }

    /// The organization's guest domain rules (organization admins).
    async fn guest_domain_rules(&self, ctx: &Context<'_>) -> AppResult<Option<GuestDomainRules>> {
        let who = caller(ctx).await?;
        if !who.org_admin {
            return Err(AppError::Forbidden);
        }
        let org = who.user.organization_id;
        let (mode, domains) = state(ctx)
            .db
            .run(move |c| crate::store::domain_rules::rules(c, org))
            .await?;
        Ok(Some(GuestDomainRules { mode, domains }))
    }

    /// Guests of a site whose address the current domain rules would refuse (site admins), by
    /// email: a rule change never removes anyone by itself. The rules are matched in the page's
    /// query, so a page reads only the guests it walks.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn guests_outside_domain_rules(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site; `FORBIDDEN` unless the caller administers it.")] site_id: ID,
        #[graphql(
            desc = "How many guests to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
    ) -> AppResult<Option<Page<User>>> {
        let who = caller(ctx).await?;
        let site = super::parse_id(&site_id, "Site")?;
        let (limit, after) = super::page::<GuestKey>(first, after)?;
        let order = GuestOrder::default();
        super::people::guest_page(ctx, site, order, limit, after, move |c| {
            crate::store::domain_rules::outside(c, &who, site)
        })
        .await
        .map(Some)
    }

    /// The re-verification scheduler's last run, next run and backlog (organization admins).
    async fn reverification_status(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<Option<ReverificationStatus>> {
        let who = caller(ctx).await?;
        if !who.org_admin {
            return Err(AppError::Forbidden);
        }
        let st = state(ctx);
        let now = st.clock.now();
        let org = who.user.organization_id;
        let s = st
            .db
            .run(move |c| external::sweep_status(c, org, now))
            .await?;
        Ok(Some(ReverificationStatus {
            last_run_at: s.last_run_at,
            next_run_at: crate::jobs::next_sweep(&st.config.reverify_schedule, now),
            last_run_emailed: s.last_run_emailed,
            pending: s.pending,
        }))
    }
}

#[derive(Default)]
pub struct ExternalMutation;

#[Object]
impl ExternalMutation {
    /// Adds a verified domain: its people are internal from now on (organization admins). Answers
    /// the organization's verified domains after the change.
    async fn add_verified_domain(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The domain to verify (adding one already verified changes nothing).")]
        input: DomainInput,
    ) -> AppResult<AddVerifiedDomainPayload> {
        let (organization, verified_domains) = set_domain(ctx, &input.domain, true).await?;
        Ok(AddVerifiedDomainPayload {
            organization,
            verified_domains,
        })
    }

    /// Replaces the organization's guest domain rules (organization admins). Invites of guests whose
    /// address they refuse answer `DOMAIN_NOT_ALLOWED`, naming each such address.
    async fn set_guest_domain_rules(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mode and its domain patterns.")] input: SetGuestDomainRulesInput,
    ) -> AppResult<SetGuestDomainRulesPayload> {
        let who = caller(ctx).await?;
        let org = who.user.organization_id;
        let now = state(ctx).clock.now();
        let (mode, domains, organization) = state(ctx)
            .db
            .run(move |c| {
                let (mode, domains) = crate::store::domain_rules::set_rules(
                    c,
                    &who,
                    input.mode,
                    &input.domains,
                    now,
                )?;
                Ok((mode, domains, crate::store::org::organization(c, org)?))
            })
            .await?;
        Ok(SetGuestDomainRulesPayload {
            guest_domain_rules: GuestDomainRules { mode, domains },
            organization: Organization(organization),
        })
    }

    /// Removes a verified domain: its people become external users (organization admins). Answers
    /// the organization's verified domains after the change.
    async fn remove_verified_domain(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The domain to remove (removing one not verified changes nothing).")]
        input: DomainInput,
    ) -> AppResult<RemoveVerifiedDomainPayload> {
        let (organization, verified_domains) = set_domain(ctx, &input.domain, false).await?;
        Ok(RemoveVerifiedDomainPayload {
            organization,
            verified_domains,
        })
    }

    /// Shows what a new policy would do to whom, and gives the review needed to apply it
    /// (organization admins). Changes nothing.
    async fn preview_external_user_security_change(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The whole policy to preview.")] input: ExternalUserSecurityInput,
    ) -> AppResult<ExternalUserSecurityPreview> {
        let who = caller(ctx).await?;
        let new = input.policy();
        let now = state(ctx).clock.now();
        let review = state(ctx)
            .db
            .run(move |c| external::preview(c, &who, &new, now))
            .await?;
        let mut counts = AffectedCounts::default();
        for (_, e) in &review.people {
            counts.people += 1;
            counts.must_reverify += i64::from(e.must_reverify);
            counts.must_use_two_step += i64::from(e.must_use_two_step);
            counts.tokens_stop += i64::from(e.tokens_stop);
            counts.sessions_end += i64::from(e.sessions_end);
        }
        Ok(ExternalUserSecurityPreview {
            review_id: ID(review.id.to_string()),
            expires_at: review.expires_at,
            counts,
            affected: review
                .people
                .into_iter()
                .map(|(user, effects)| AffectedPerson { user, effects })
                .collect(),
        })
    }

    /// Applies a policy previewed with `previewExternalUserSecurityChange`; `REVIEW_STALE` when the
    /// review is unknown, expired, for another policy, or the affected people changed since.
    async fn update_external_user_security(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The previewed policy and its `reviewId`.")]
        input: UpdateExternalUserSecurityInput,
    ) -> AppResult<UpdateExternalUserSecurityPayload> {
        let who = caller(ctx).await?;
        let review =
            super::parse_id(&input.review_id, "Review").map_err(|_| AppError::ReviewStale)?;
        let new = ExternalPolicy {
            two_step: input.two_step_verification,
            reverification_interval_minutes: input.reverification_interval,
            api_token_access: input.api_token_access,
            session_idle_timeout_minutes: input.session_idle_timeout_minutes,
        };
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| external::update(c, &who, &new, review, now))
            .await
            .map(|p| UpdateExternalUserSecurityPayload {
                external_user_security: p.into(),
            })
    }

    /// Ends every session of the organization's external users (organization admins).
    async fn reset_external_user_sessions(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<ResetExternalUserSessionsPayload> {
        let who = caller(ctx).await?;
        let now = state(ctx).clock.now();
        let n = state(ctx)
            .db
            .run(move |c| external::reset_sessions(c, &who, now))
            .await?;
        Ok(ResetExternalUserSessionsPayload { count: n as i64 })
    }

    /// Runs the re-verification sweep now, on a worker (organization admins).
    async fn run_reverification_sweep(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<RunReverificationSweepPayload> {
        let who = caller(ctx).await?;
        if !who.org_admin {
            return Err(AppError::Forbidden);
        }
        state(ctx)
            .db
            .run(|c| external::enqueue_sweep(c, SweepTrigger::Manual, None))
            .await
            .map(|queued| RunReverificationSweepPayload { queued })
    }

    /// Emails the caller a code to verify their address again (works while verification is due);
    /// earlier codes stop working. Limited per client address and per person (`RATE_LIMITED`).
    async fn request_reverification_code(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<RequestReverificationCodePayload> {
        let who = caller_to_reverify(ctx).await?;
        let st = state(ctx);
        st.limits
            .code_address
            .check(st, &client_address(ctx))
            .await?;
        st.limits
            .reset_account
            .check(st, &format!("reverify:{}", who.user.id))
            .await?;
        let (policy, now) = (st.delivery.clone(), st.clock.now());
        let expires_at = st
            .db
            .run(move |c| external::request_code(c, &who.user, &policy, now))
            .await?;
        Ok(RequestReverificationCodePayload { expires_at })
    }

    /// Verifies the caller's address with the emailed code: a new period starts now. Attempts are
    /// limited per client address (`RATE_LIMITED`).
    async fn complete_reverification(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The emailed code.")] input: CompleteReverificationInput,
    ) -> AppResult<CompleteReverificationPayload> {
        let who = caller_to_reverify(ctx).await?;
        let st = state(ctx);
        st.limits
            .code_address
            .check(st, &client_address(ctx))
            .await?;
        let (signer, now) = (st.signer.clone(), st.clock.now());
        let user = who.user.clone();
        st.db
            .run(move |c| external::complete_code(c, &signer, &user, &input.code, now))
            .await?;
        Ok(CompleteReverificationPayload {
            verified_until: now + who.policy.interval(),
        })
    }
}

/// Adds or removes a verified domain: the organization, and its verified domains now.
async fn set_domain(
    ctx: &Context<'_>,
    raw: &str,
    verified: bool,
) -> AppResult<(Organization, Vec<String>)> {
    let who = caller(ctx).await?;
    let org = who.user.organization_id;
    let domain = external::parse_domain(raw)?;
    let now = state(ctx).clock.now();
    let (organization, domains) = state(ctx)
        .db
        .run(move |c| {
            let domains = external::set_domain(c, &who, &domain, verified, now)?;
            Ok((crate::store::org::organization(c, org)?, domains))
        })
        .await?;
    Ok((Organization(organization), domains))
}

/// The organization after `addVerifiedDomain`.
#[derive(SimpleObject)]
pub struct AddVerifiedDomainPayload {
    /// The organization (its `verifiedDomains` include the new one).
    pub organization: Organization,
    /// The organization's verified domains now.
    pub verified_domains: Vec<String>,
}

/// The organization after `removeVerifiedDomain`.
#[derive(SimpleObject)]
pub struct RemoveVerifiedDomainPayload {
    /// The organization (its `verifiedDomains` no longer include the removed one).
    pub organization: Organization,
    /// The organization's verified domains now.
    pub verified_domains: Vec<String>,
}

/// The rules `setGuestDomainRules` set.
#[derive(SimpleObject)]
pub struct SetGuestDomainRulesPayload {
    /// The organization's guest domain rules now.
    pub guest_domain_rules: GuestDomainRules,
    /// The organization they belong to.
    pub organization: Organization,
}

/// The policy `updateExternalUserSecurity` applied.
#[derive(SimpleObject)]
pub struct UpdateExternalUserSecurityPayload {
    /// The organization's external user security policy now.
    pub external_user_security: ExternalUserSecurity,
}

/// What `runReverificationSweep` did.
#[derive(SimpleObject)]
pub struct RunReverificationSweepPayload {
    /// The sweep was queued for the maintenance worker (its outcome shows in `reverificationStatus`).
    pub queued: bool,
}
