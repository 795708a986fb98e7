//! Guest lifetimes and sponsors: when a guest's access ends, who answers for them, the reminders
//! before the end, extensions, and the guest's own view of where they stand.

use crate::db::schema::*;
use crate::domain::ProductRole;
use crate::domain::status::{DeliveryStatus, NoticeKind, UserStatus};
use crate::error::{AppError, AppResult};
use crate::store::access::{self, Caller};
use crate::store::audit::{self, Audit};
use crate::store::changes;
use crate::store::directory::user_in_org;
use crate::store::guests::GuestFilter;
use crate::store::invites::DeliveryPolicy;
use crate::store::models::{DeliverySubject, GuestTerms, Invite, Site, Space, User};
use crate::store::queue;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

/// The end a guest gets when they accept an invite: the invite's date, or its number of days from now;
/// never beyond the site's maximum lifetime (which applies to every guest when set).
pub fn end_for(invite: &Invite, site: &Site, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let asked = invite
        .access_ends_at
        .or_else(|| invite.access_days.map(|d| now + Duration::days(d.into())));
    let cap = site
        .max_guest_lifetime_days
        .map(|d| now + Duration::days(d.into()));
    match (asked, cap) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// Records an accepted guest's terms: the inviter is their sponsor.
pub fn set_on_accept(
    conn: &mut PgConnection,
    site: &Site,
    invite: &Invite,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let ends = end_for(invite, site, now);
    diesel::insert_into(guest_terms::table)
        .values((
            guest_terms::site_id.eq(site.id),
            guest_terms::user_id.eq(user_id),
            guest_terms::sponsor_id.eq(invite.invited_by),
            guest_terms::ends_at.eq(ends),
            guest_terms::updated_at.eq(now),
        ))
        .on_conflict((guest_terms::site_id, guest_terms::user_id))
        .do_update()
        .set((
            guest_terms::sponsor_id.eq(invite.invited_by),
            guest_terms::ends_at.eq(ends),
            guest_terms::reminded_for.eq(None::<DateTime<Utc>>),
            guest_terms::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn terms(conn: &mut PgConnection, site: Uuid, user: Uuid) -> AppResult<Option<GuestTerms>> {
    Ok(guest_terms::table
        .find((site, user))
        .select(GuestTerms::as_select())
        .first(conn)
        .optional()?)
}

/// A guest of the site, and their terms; anyone else is `INVALID_INPUT`.
fn guest_with_terms(conn: &mut PgConnection, site: Uuid, user: &User) -> AppResult<GuestTerms> {
    if access::effective_role_of(conn, site, user.id)? != Some(ProductRole::Guest) {
        return Err(AppError::invalid(
            "userId",
            format!("{} is not a guest of this site", user.email),
        ));
    }
    Ok(terms(conn, site, user.id)?.unwrap_or(GuestTerms {
        site_id: site,
        user_id: user.id,
        sponsor_id: None,
        ends_at: None,
        reminded_for: None,
        updated_at: DateTime::<Utc>::UNIX_EPOCH,
    }))
}

/// Moves the end of a guest's access (site admins, and the guest's sponsor while they may sponsor
/// there), within the site's maximum.
pub fn extend(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
    user_id: Uuid,
    ends_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> AppResult<GuestTerms> {
    let a = access::site_access(conn, caller, site_id)?;
    let user = user_in_org(conn, caller.user.organization_id, user_id)?;
    let current = terms(conn, site_id, user_id)?;
    let sponsor = current.as_ref().and_then(|t| t.sponsor_id) == Some(caller.user.id)
        && can_sponsor(conn, site_id, &caller.user)?;
    if !(a.is_admin() || sponsor) {
        return Err(AppError::Forbidden);
    }
    guest_with_terms(conn, site_id, &user)?;
    if ends_at <= now {
        return Err(AppError::invalid("endsAt", "must be in the future"));
    }
    if let Some(max) = a.site.max_guest_lifetime_days
        && ends_at > now + Duration::days(max.into())
    {
        return Err(AppError::ExtensionNotAllowed { max_days: max });
    }
    conn.transaction(|conn| {
        let t: GuestTerms = diesel::insert_into(guest_terms::table)
            .values((
                guest_terms::site_id.eq(site_id),
                guest_terms::user_id.eq(user_id),
                guest_terms::ends_at.eq(ends_at),
                guest_terms::updated_at.eq(now),
            ))
            .on_conflict((guest_terms::site_id, guest_terms::user_id))
            .do_update()
            .set((
                guest_terms::ends_at.eq(ends_at),
                guest_terms::updated_at.eq(now),
            ))
            .returning(GuestTerms::as_returning())
            .get_result(conn)?;
        audit::record(
            conn,
            Audit::new(user.organization_id, caller.user.id, "guest.extend", now)
                .target("user", user_id)
                .site(site_id)
                .after(json!({ "before": current.and_then(|c| c.ends_at), "endsAt": ends_at })),
        )?;
        Ok(t)
    })
}

/// Names who answers for a guest (site admins); the sponsor must be an admin or a paid user there.
pub fn set_sponsor(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
    user_id: Uuid,
    sponsor_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<GuestTerms> {
    let a = access::site_access(conn, caller, site_id)?;
    let user = user_in_org(conn, caller.user.organization_id, user_id)?;
    let sponsor = user_in_org(conn, caller.user.organization_id, sponsor_id)?;
    a.require_admin()?;
    guest_with_terms(conn, site_id, &user)?;
    if !can_sponsor(conn, site_id, &sponsor)? {
        return Err(AppError::invalid(
            "sponsorId",
            "a sponsor must be an active admin or paid user of the site",
        ));
    }
    conn.transaction(|conn| {
        let t: GuestTerms = diesel::insert_into(guest_terms::table)
            .values((
                guest_terms::site_id.eq(site_id),
                guest_terms::user_id.eq(user_id),
                guest_terms::sponsor_id.eq(sponsor_id),
                guest_terms::updated_at.eq(now),
            ))
            .on_conflict((guest_terms::site_id, guest_terms::user_id))
            .do_update()
            .set((
                guest_terms::sponsor_id.eq(sponsor_id),
                guest_terms::updated_at.eq(now),
            ))
            .returning(GuestTerms::as_returning())
            .get_result(conn)?;
        audit::record(
            conn,
            Audit::new(
                user.organization_id,
                caller.user.id,
                "guest.setSponsor",
                now,
            )
            .target("user", user_id)
            .site(site_id)
            .after(json!({ "sponsor": sponsor_id })),
        )?;
        Ok(t)
    })
}

/// Who may answer for a site's guests (`domain::roles::may_sponsor`: an active account that
/// administers the site, as an organization or site admin, or holds a paid role there), as one SQL
/// condition on a sponsor's id and a site's id (two SQL expressions). It is where the rule is
/// evaluated, by the check of one person ([`can_sponsor`]: `sponsoredGuests`, extending access as a
/// sponsor, `access.sponsor`, reminders, extension requests) and by the list of guests nobody
/// answers for ([`GuestFilter::without_acting_sponsor`], `guestsWithoutSponsor`) alike, so the two
/// cannot disagree.
pub(crate) fn sponsor_acts(sponsor: &str, site: &str) -> String {
    // The paid roles, as `site_members.role` ranks them (its CHECK allows 1 to 3).
    let paid: Vec<String> = (1..=3)
        .filter_map(ProductRole::from_rank)
        .filter(|r| r.is_paid())
        .map(|r| r.rank().to_string())
        .collect();
    // Written into the text like the ranks: the fragment is shared by statements with their own
    // parameters.
    let active = UserStatus::Active.as_str();
    format!(
        "EXISTS (SELECT 1 FROM users sp WHERE sp.id = {sponsor} AND sp.status = '{active}' AND ( \
           EXISTS (SELECT 1 FROM org_admins spo WHERE spo.organization_id = sp.organization_id \
             AND spo.user_id = sp.id) \
           OR EXISTS (SELECT 1 FROM site_admins sps WHERE sps.site_id = {site} AND sps.user_id = sp.id) \
           OR EXISTS (SELECT 1 FROM site_members spm WHERE spm.site_id = {site} \
             AND spm.user_id = sp.id AND spm.role IN ({}))))",
        paid.join(", ")
    )
}

#[derive(QueryableByName)]
struct Acts {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    acts: bool,
}

/// Whether someone can answer for guests of a site now ([`sponsor_acts`]). Every use of a
/// sponsorship asks this, so one that lost its footing is inert everywhere at once.
fn can_sponsor(conn: &mut PgConnection, site_id: Uuid, u: &User) -> AppResult<bool> {
    let r: Acts = diesel::sql_query(format!("SELECT {} AS acts", sponsor_acts("$1", "$2")))
        .bind::<diesel::sql_types::Uuid, _>(u.id)
        .bind::<diesel::sql_types::Uuid, _>(site_id)
        .get_result(conn)?;
    Ok(r.acts)
}

/// A guest's sponsor, while they may still sponsor on the site; `None` otherwise.
fn acting_sponsor(
    conn: &mut PgConnection,
    site_id: Uuid,
    sponsor_id: Option<Uuid>,
) -> AppResult<Option<User>> {
    let Some(id) = sponsor_id else {
        return Ok(None);
    };
    let u: Option<User> = users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()?;
    match u {
        Some(u) if can_sponsor(conn, site_id, &u)? => Ok(Some(u)),
        _ => Ok(None),
    }
}

/// The filter of the guests whose sponsor is the caller (`guests::list` pages them); `FORBIDDEN` to
/// anyone who may not sponsor on the site (a sponsor who lost their paid role there no longer
/// answers for anyone).
pub fn sponsored(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
) -> AppResult<GuestFilter> {
    access::site_in_org(conn, caller.user.organization_id, site_id)?;
    if !can_sponsor(conn, site_id, &caller.user)? {
        return Err(AppError::Forbidden);
    }
    Ok(GuestFilter {
        sponsor: Some(caller.user.id),
        ..Default::default()
    })
}

/// The filter of the guests nobody answers for any more (site admins; `guests::list` pages them):
/// no sponsor, or one who may no longer sponsor there (gone, deactivated, or no longer paid or an
/// admin on the site). Computed, not stored, by the rule every sponsor's action is checked by
/// ([`sponsor_acts`]), in the page's one query.
pub fn without_sponsor(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
) -> AppResult<GuestFilter> {
    access::site_access(conn, caller, site_id)?.require_admin()?;
    Ok(GuestFilter {
        without_acting_sponsor: true,
        ..Default::default()
    })
}

/// One site where the caller has access, as they see it.
pub struct MyAccess {
    pub site: Site,
    pub role: ProductRole,
    pub space: Option<Space>,
    pub sponsor: Option<User>,
    pub ends_at: Option<DateTime<Utc>>,
}

pub fn my_access(conn: &mut PgConnection, caller: &Caller) -> AppResult<Vec<MyAccess>> {
    let sites: Vec<Site> = sites::table
        .filter(sites::organization_id.eq(caller.user.organization_id))
        .order(sites::name.asc())
        .select(Site::as_select())
        .load(conn)?;
    let ids: Vec<Uuid> = sites.iter().map(|s| s.id).collect();
    let roles = changes::state::roles(conn, &ids, &[caller.user.id])?;
    let mut out = Vec::new();
    for site in sites {
        let Some(role) = roles.get(&(site.id, caller.user.id)).copied().flatten() else {
            continue;
        };
        let t = terms(conn, site.id, caller.user.id)?;
        let space = if role == ProductRole::Guest {
            guest_spaces::table
                .inner_join(spaces::table.on(spaces::id.eq(guest_spaces::space_id)))
                .filter(guest_spaces::site_id.eq(site.id))
                .filter(guest_spaces::user_id.eq(caller.user.id))
                .select(Space::as_select())
                .first(conn)
                .optional()?
        } else {
            None
        };
        let sponsor = acting_sponsor(conn, site.id, t.as_ref().and_then(|t| t.sponsor_id))?;
        out.push(MyAccess {
            role,
            space,
            sponsor,
            ends_at: t.and_then(|t| t.ends_at),
            site,
        });
    }
    Ok(out)
}

/// A message about a guest's access, to one person.
struct NoticeTo<'a> {
    kind: NoticeKind,
    site: &'a Site,
    guest: Uuid,
    recipient: &'a User,
    ends_at: Option<DateTime<Utc>>,
    message: Option<&'a str>,
}

/// Creates a notice and queues its email.
fn notify(
    conn: &mut PgConnection,
    n: NoticeTo<'_>,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let NoticeTo {
        kind,
        site,
        guest,
        recipient,
        ends_at,
        message,
    } = n;
    let id: Uuid = diesel::insert_into(notices::table)
        .values((
            notices::kind.eq(kind),
            notices::site_id.eq(site.id),
            notices::guest_id.eq(guest),
            notices::recipient_id.eq(recipient.id),
            notices::ends_at.eq(ends_at),
            notices::message.eq(message),
            notices::created_at.eq(now),
        ))
        .returning(notices::id)
        .get_result(conn)?;
    let delivery: Uuid = diesel::insert_into(email_deliveries::table)
        .values((
            email_deliveries::organization_id.eq(site.organization_id),
            DeliverySubject::Notice(id).values(),
            email_deliveries::recipient.eq(&recipient.email),
            email_deliveries::status.eq(DeliveryStatus::Queued),
            email_deliveries::message_id.eq(format!(
                "<notice.{}@{}>",
                id.simple(),
                policy.message_id_domain
            )),
            email_deliveries::created_at.eq(now),
            email_deliveries::give_up_at.eq(now + policy.retry_for),
        ))
        .returning(email_deliveries::id)
        .get_result(conn)?;
    queue::enqueue_emails(conn, &[delivery])
}

/// A guest asks their sponsor for more time.
pub fn request_extension(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
    message: Option<&str>,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let site = access::site_in_org(conn, caller.user.organization_id, site_id)?;
    let t = guest_with_terms(conn, site_id, &caller.user)?;
    let sponsor: User = match acting_sponsor(conn, site_id, t.sponsor_id)? {
        Some(s) => s,
        None => {
            return Err(AppError::invalid(
                "siteId",
                "nobody sponsors your access on this site; ask an admin",
            ));
        }
    };
    conn.transaction(|conn| {
        notify(
            conn,
            NoticeTo {
                kind: NoticeKind::ExtensionRequest,
                site: &site,
                guest: caller.user.id,
                recipient: &sponsor,
                ends_at: t.ends_at,
                message,
            },
            policy,
            now,
        )?;
        audit::record(
            conn,
            Audit::new(
                site.organization_id,
                caller.user.id,
                "guest.requestExtension",
                now,
            )
            .target("user", caller.user.id)
            .site(site_id)
            .after(json!({ "sponsor": sponsor.id })),
        )
    })
}

/// A guest ends their own access to a site.
pub fn leave(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    access::site_in_org(conn, caller.user.organization_id, site_id)?;
    guest_with_terms(conn, site_id, &caller.user)?;
    crate::store::grants::remove_access(
        conn,
        crate::store::grants::Removal::by(Some(caller.user.id), "guest.leave"),
        site_id,
        &caller.user,
        false,
        now,
    )?;
    Ok(())
}

/// The scheduled part: reminders before the end (to the guest and their sponsor, once per end date)
/// and the end itself (access removed exactly as `removeProductAccess` does). Returns (reminded, ended).
pub fn run(
    conn: &mut PgConnection,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<(usize, usize)> {
    let mut reminded = 0;
    for (t, site) in due_reminders(conn, now)? {
        if conn.transaction(|conn| remind(conn, &t, &site, policy, now))? {
            reminded += 1;
        }
    }
    let ended: Vec<GuestTerms> = guest_terms::table
        .filter(guest_terms::ends_at.le(now))
        .select(GuestTerms::as_select())
        .limit(1000)
        .load(conn)?;
    let mut count = 0;
    for t in ended {
        end_access(conn, &t, now)?;
        count += 1;
    }
    Ok((reminded, count))
}

/// Terms whose reminder is due (their end is within the site's reminder days and not past) and not
/// yet sent for this end date, with their site; at most 1000 a run.
fn due_reminders(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> AppResult<Vec<(GuestTerms, Site)>> {
    Ok(guest_terms::table
        .inner_join(sites::table.on(sites::id.eq(guest_terms::site_id)))
        .filter(guest_terms::ends_at.gt(now))
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>(
                "guest_terms.ends_at - make_interval(days => sites.guest_reminder_days) <= ",
            )
            .bind::<diesel::sql_types::Timestamptz, _>(now),
        )
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "guest_terms.reminded_for IS DISTINCT FROM guest_terms.ends_at",
        ))
        .select((GuestTerms::as_select(), Site::as_select()))
        .limit(1000)
        .load(conn)?)
}

/// Reminds a guest (and their acting sponsor) of the end of their access, in the caller's
/// transaction; answers whether it did. The reminder is claimed for this end date first, so a
/// concurrent run finds nothing to do; someone who is no longer a guest there is not reminded.
fn remind(
    conn: &mut PgConnection,
    t: &GuestTerms,
    site: &Site,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let claimed = diesel::update(
        guest_terms::table
            .find((t.site_id, t.user_id))
            .filter(guest_terms::ends_at.eq(t.ends_at))
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "reminded_for IS DISTINCT FROM ends_at",
            )),
    )
    .set(guest_terms::reminded_for.eq(t.ends_at))
    .execute(conn)?;
    if claimed == 0
        || access::effective_role_of(conn, t.site_id, t.user_id)? != Some(ProductRole::Guest)
    {
        return Ok(false);
    }
    let guest: User = users::table
        .find(t.user_id)
        .select(User::as_select())
        .first(conn)?;
    let reminder = |recipient| NoticeTo {
        kind: NoticeKind::LifetimeReminder,
        site,
        guest: t.user_id,
        recipient,
        ends_at: t.ends_at,
        message: None,
    };
    notify(conn, reminder(&guest), policy, now)?;
    if let Some(sponsor) = acting_sponsor(conn, t.site_id, t.sponsor_id)? {
        notify(conn, reminder(&sponsor), policy, now)?;
    }
    audit::record(
        conn,
        Audit::new(site.organization_id, None, "guest.lifetimeReminder", now)
            .target("user", guest.id)
            .site(site.id)
            .after(json!({ "endsAt": t.ends_at })),
    )?;
    Ok(true)
}

/// Ends a guest's access whose terms ran out. Nobody can be asked here, and the end of access must
/// happen: groups that also grant on other sites are left too (as before), unlike a removal someone
/// asks for.
fn end_access(conn: &mut PgConnection, t: &GuestTerms, now: DateTime<Utc>) -> AppResult<()> {
    let guest: User = users::table
        .find(t.user_id)
        .select(User::as_select())
        .first(conn)?;
    crate::store::grants::remove_access(
        conn,
        crate::store::grants::Removal {
            groups_elsewhere: crate::domain::removal::GroupsElsewhere::Leave,
            ..crate::store::grants::Removal::by(None, "guest.lifetimeEnded")
        },
        t.site_id,
        &guest,
        false,
        now,
    )?;
    Ok(())
}
