//! Per-request data loaders: fields that would be fetched once per row of a list (a guest's space,
//! inviter and groups) are collected and fetched in one statement per kind.
//!
//! A query's loaders keep what they loaded for the rest of the request, and a list can [`prefetch`]
//! what its rows' fields will ask for in the same database call as the page itself: the loaders'
//! batches would otherwise come in several waves (each a trip through the blocking pool), split by the
//! runtime's cooperative yields when the server is busy. A mutation's loaders keep nothing, so a
//! payload never reads what an earlier mutation of the same document changed.

use crate::db::Db;
use crate::domain::policy::ExternalPolicy;
use crate::error::AppError;
use crate::store::models::{Group, Site, Space, User};
use crate::store::{directory, groups, guests};
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use std::collections::HashMap;
use uuid::Uuid;

/// Loads from the store through the one async boundary.
pub struct StoreLoader {
    db: Db,
}

pub type Loaders = DataLoader<StoreLoader, HashMapCache>;

/// The loaders of one request; `keep`: whether they keep what they load (queries only).
pub fn loaders(db: Db, keep: bool) -> Loaders {
    let l = DataLoader::with_cache(StoreLoader { db }, tokio::spawn, HashMapCache::default());
    l.enable_all_cache(keep);
    l
}

/// What a page of people's fields will ask for, loaded with the page (see the module's doc).
#[derive(Default)]
pub struct Prefetched {
    pub persons: Vec<crate::domain::authorization::Person>,
    /// `(site, guest)` and the guest's space there, for every guest of the page (`None`: no space).
    pub spaces: Vec<((Uuid, Uuid), Option<Space>)>,
    pub groups: Vec<(Uuid, Vec<Group>)>,
    pub users: Vec<User>,
}

/// Which fields of a page's people to prefetch: the selection under `edges { node }` or `nodes`.
pub struct Wanted {
    pub space: bool,
    pub groups: bool,
    pub invited_by: bool,
}

impl Wanted {
    pub fn of(ctx: &async_graphql::Context<'_>) -> Self {
        let look = ctx.look_ahead();
        let (edges, nodes) = (look.field("edges").field("node"), look.field("nodes"));
        let asks = |f: &str| edges.field(f).exists() || nodes.field(f).exists();
        Self {
            space: asks("space"),
            groups: asks("groups"),
            invited_by: asks("invitedBy"),
        }
    }
}

/// Loads, for the people of a page on `site`, what [`Wanted`] says their fields will ask for, in the
/// caller's database call (a few statements, whatever the page's size).
pub fn prefetch(
    c: &mut diesel::PgConnection,
    site: Uuid,
    people: &[User],
    wanted: &Wanted,
) -> crate::error::AppResult<Prefetched> {
    let mut out = Prefetched::default();
    if people.is_empty() {
        return Ok(out);
    }
    let ids: Vec<Uuid> = people.iter().map(|u| u.id).collect();
    let mut facts_of = ids.clone();
    if wanted.invited_by {
        let mut inviters: Vec<Uuid> = people.iter().filter_map(|u| u.invited_by).collect();
        inviters.sort();
        inviters.dedup();
        out.users = directory::users_by_ids(c, &inviters)?;
        facts_of.extend(inviters);
    }
    out.persons = crate::store::access::persons(c, &facts_of)?;
    if wanted.space {
        let pairs: Vec<(Uuid, Uuid)> = ids.iter().map(|u| (site, *u)).collect();
        let found: HashMap<(Uuid, Uuid), Space> =
            guests::spaces_of(c, &pairs)?.into_iter().collect();
        out.spaces = pairs
            .into_iter()
            .map(|k| (k, found.get(&k).cloned()))
            .collect();
    }
    if wanted.groups {
        let mut by_user: HashMap<Uuid, Vec<Group>> = ids.iter().map(|u| (*u, Vec::new())).collect();
        for (user, g) in groups::groups_of(c, &ids)? {
            by_user.entry(user).or_default().push(g);
        }
        out.groups = by_user.into_iter().collect();
    }
    Ok(out)
}

/// Hands what [`prefetch`] loaded to the request's loaders (kept only by a query's loaders).
pub async fn feed(loaders: &Loaders, p: Prefetched) {
    loaders
        .feed_many(p.persons.into_iter().map(|x| (PersonOf(x.id), x)))
        .await;
    loaders
        .feed_many(
            p.spaces
                .into_iter()
                .map(|((s, u), x)| (GuestSpaceOf(s, u), x)),
        )
        .await;
    loaders
        .feed_many(p.groups.into_iter().map(|(u, g)| (GroupsOf(u), g)))
        .await;
    loaders
        .feed_many(p.users.into_iter().map(|u| (UserById(u.id), u)))
        .await;
}

/// A user by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserById(pub Uuid);

/// The space of a guest on a site: `(site, user)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GuestSpaceOf(pub Uuid, pub Uuid);

/// The groups a user belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupsOf(pub Uuid);

/// An organization's verified domains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DomainsOf(pub Uuid);

/// An organization's external user policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PolicyOf(pub Uuid);

/// A person as the authorization policy sees them (where they hold grants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PersonOf(pub Uuid);

/// The sites a group holds a role on, with the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupSitesOf(pub Uuid);

/// How many guests a space holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GuestCountOf(pub Uuid);

/// The admin grants a person holds: sites they are a site admin of, spaces they are a space admin of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdminGrantsOf(pub Uuid);

/// What [`AdminGrantsOf`] answers, as written (the caller's sight of each is for the field to judge).
#[derive(Clone, Debug, Default)]
pub struct AdminGrants {
    pub sites: Vec<Site>,
    pub spaces: Vec<Space>,
}

/// The people who hold a space admin role on a space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpaceAdminsOf(pub Uuid);

/// Whether a person has an authenticator app enrolled and confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AuthenticatorOf(pub Uuid);

impl Loader<UserById> for StoreLoader {
    type Value = User;
    type Error = AppError;

    async fn load(&self, keys: &[UserById]) -> Result<HashMap<UserById, User>, AppError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = self
            .db
            .run(move |c| directory::users_by_ids(c, &ids))
            .await?;
        Ok(rows.into_iter().map(|u| (UserById(u.id), u)).collect())
    }
}

impl Loader<PersonOf> for StoreLoader {
    type Value = crate::domain::authorization::Person;
    type Error = AppError;

    async fn load(&self, keys: &[PersonOf]) -> Result<HashMap<PersonOf, Self::Value>, AppError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = self
            .db
            .run(move |c| crate::store::access::persons(c, &ids))
            .await?;
        Ok(rows.into_iter().map(|p| (PersonOf(p.id), p)).collect())
    }
}

impl Loader<GroupSitesOf> for StoreLoader {
    type Value = Vec<(Uuid, crate::domain::ProductRole)>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[GroupSitesOf],
    ) -> Result<HashMap<GroupSitesOf, Self::Value>, AppError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = self.db.run(move |c| groups::site_roles_of(c, &ids)).await?;
        let mut out: HashMap<GroupSitesOf, Self::Value> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for (g, s, r) in rows {
            out.entry(GroupSitesOf(g)).or_default().push((s, r));
        }
        Ok(out)
    }
}

impl Loader<GuestSpaceOf> for StoreLoader {
    /// `None`: a guest without a space (an answer too, so it is kept like the others).
    type Value = Option<Space>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[GuestSpaceOf],
    ) -> Result<HashMap<GuestSpaceOf, Option<Space>>, AppError> {
        let pairs: Vec<(Uuid, Uuid)> = keys.iter().map(|k| (k.0, k.1)).collect();
        let rows = self.db.run(move |c| guests::spaces_of(c, &pairs)).await?;
        let mut out: HashMap<GuestSpaceOf, Option<Space>> =
            keys.iter().map(|k| (*k, None)).collect();
        for ((site, user), s) in rows {
            out.insert(GuestSpaceOf(site, user), Some(s));
        }
        Ok(out)
    }
}

impl Loader<GroupsOf> for StoreLoader {
    type Value = Vec<Group>;
    type Error = AppError;

    async fn load(&self, keys: &[GroupsOf]) -> Result<HashMap<GroupsOf, Vec<Group>>, AppError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = self.db.run(move |c| groups::groups_of(c, &ids)).await?;
        let mut out: HashMap<GroupsOf, Vec<Group>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for (user, g) in rows {
            out.entry(GroupsOf(user)).or_default().push(g);
        }
        Ok(out)
    }
}

impl Loader<DomainsOf> for StoreLoader {
    type Value = Vec<String>;
    type Error = AppError;

    async fn load(&self, keys: &[DomainsOf]) -> Result<HashMap<DomainsOf, Vec<String>>, AppError> {
        let orgs: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        self.db
            .run(move |c| {
                orgs.iter()
                    .map(|o| Ok((DomainsOf(*o), crate::store::org::verified_domains(c, *o)?)))
                    .collect()
            })
            .await
    }
}

impl Loader<PolicyOf> for StoreLoader {
    type Value = ExternalPolicy;
    type Error = AppError;

    async fn load(&self, keys: &[PolicyOf]) -> Result<HashMap<PolicyOf, ExternalPolicy>, AppError> {
        let orgs: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        self.db
            .run(move |c| {
                orgs.iter()
                    .map(|o| Ok((PolicyOf(*o), crate::store::external::policy(c, *o)?)))
                    .collect()
            })
            .await
    }
}

impl Loader<GuestCountOf> for StoreLoader {
    type Value = i64;
    type Error = AppError;

    async fn load(&self, keys: &[GuestCountOf]) -> Result<HashMap<GuestCountOf, i64>, AppError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let counts = self.db.run(move |c| guests::guest_counts(c, &ids)).await?;
        Ok(keys
            .iter()
            .map(|k| (*k, counts.get(&k.0).copied().unwrap_or(0)))
            .collect())
    }
}

impl Loader<AdminGrantsOf> for StoreLoader {
    type Value = AdminGrants;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[AdminGrantsOf],
    ) -> Result<HashMap<AdminGrantsOf, AdminGrants>, AppError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let (sites, spaces) = self
            .db
            .run(move |c| crate::store::access::admin_grants(c, &ids))
            .await?;
        let mut out: HashMap<AdminGrantsOf, AdminGrants> =
            keys.iter().map(|k| (*k, AdminGrants::default())).collect();
        for (user, site) in sites {
            out.entry(AdminGrantsOf(user)).or_default().sites.push(site);
        }
        for (user, space) in spaces {
            out.entry(AdminGrantsOf(user))
                .or_default()
                .spaces
                .push(space);
        }
        Ok(out)
    }
}

impl Loader<SpaceAdminsOf> for StoreLoader {
    type Value = Vec<User>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[SpaceAdminsOf],
    ) -> Result<HashMap<SpaceAdminsOf, Vec<User>>, AppError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = self
            .db
            .run(move |c| crate::store::access::space_admins_of(c, &ids))
            .await?;
        let mut out: HashMap<SpaceAdminsOf, Vec<User>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for (space, user) in rows {
            out.entry(SpaceAdminsOf(space)).or_default().push(user);
        }
        Ok(out)
    }
}

impl Loader<AuthenticatorOf> for StoreLoader {
    type Value = bool;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[AuthenticatorOf],
    ) -> Result<HashMap<AuthenticatorOf, bool>, AppError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let with = self
            .db
            .run(move |c| crate::store::access::with_authenticator(c, &ids))
            .await?;
        Ok(keys.iter().map(|k| (*k, with.contains(&k.0))).collect())
    }
}
