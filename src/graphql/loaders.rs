//! Per-request data loaders: fields that would be fetched once per row of a list (a guest's space,
//! inviter and groups) are collected and fetched in one statement per kind.

use crate::db::Db;
use crate::domain::policy::ExternalPolicy;
use crate::error::AppError;
use crate::store::models::{Group, Space, User};
use crate::store::{directory, groups, guests};
use async_graphql::dataloader::{DataLoader, Loader};
use std::collections::HashMap;
use uuid::Uuid;

/// Loads from the store through the one async boundary.
pub struct StoreLoader {
    db: Db,
}

pub type Loaders = DataLoader<StoreLoader>;

pub fn loaders(db: Db) -> Loaders {
    DataLoader::new(StoreLoader { db }, tokio::spawn)
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
    type Value = Space;
    type Error = AppError;

    async fn load(&self, keys: &[GuestSpaceOf]) -> Result<HashMap<GuestSpaceOf, Space>, AppError> {
        let pairs: Vec<(Uuid, Uuid)> = keys.iter().map(|k| (k.0, k.1)).collect();
        let rows = self.db.run(move |c| guests::spaces_of(c, &pairs)).await?;
        Ok(rows
            .into_iter()
            .map(|((site, user), s)| (GuestSpaceOf(site, user), s))
            .collect())
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
