//! The one authorization policy: who may see which object, and who may change what. Every resolver,
//! export and store mutation asks [`may_see`] or [`may_change`] (or, for a change on one site that
//! the standing there decides alone, [`Standing::may`], which [`may_change`] asks too); none decides
//! on its own, so a rule changes here and nowhere else. Pure: the store loads the facts ([`Viewer`],
//! [`Person`]) once per request (or inside a mutation's transaction) and hands them over. What a
//! client is told it may do (`Site.viewerCanInvite`, `Space.viewerCanManage`...) is the same call
//! as the refusal of the change itself, so a menu and the server never disagree.
//!
//! The rules, in words (`docs/authorization.md` holds the same as a table, generated from this file
//! by a test):
//! - Nothing crosses organizations.
//! - A guest sees their own account, their one space and its pages, the name of the site, and the
//!   display name (only) of whoever invited and sponsors them. Nobody else, no other space, no
//!   groups, no other site.
//! - Paid users see the spaces of their sites and the people directory of their sites (everyone
//!   present on them), and the groups whose roles are all on sites they see whole.
//! - Space admins also manage their space's guests.
//! - Site admins manage their site and what reaches only their site.
//! - Organization admins manage everything in the organization.

use crate::domain::ProductRole;
use uuid::Uuid;

/// A viewer's standing on one site, derived from their grants by [`Standing::from_grants`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    pub org_admin: bool,
    pub site_admin: bool,
    /// The effective role (see `roles::effective_role`).
    pub role: Option<ProductRole>,
    /// The guest's one space (only while their effective role is `GUEST`).
    pub guest_space: Option<Uuid>,
    /// Spaces the viewer administers (only while they are paid there or an admin).
    pub admin_of_spaces: Vec<Uuid>,
}

/// What one person holds on one site, as the store reads it: the maintained effective role and guest
/// space (`domain::access::derive`) and the admin grants.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    pub site_admin: bool,
    pub role: Option<ProductRole>,
    pub guest_space: Option<Uuid>,
    pub admin_spaces: Vec<Uuid>,
}

impl Standing {
    /// The standing that `grants` give, for an organization admin or not.
    pub fn from_grants(org_admin: bool, g: Grants) -> Self {
        let role = g.role;
        let admin = org_admin || g.site_admin;
        Self {
            org_admin,
            site_admin: g.site_admin,
            role,
            guest_space: g.guest_space.filter(|_| role == Some(ProductRole::Guest)),
            admin_of_spaces: if admin || role.is_some_and(ProductRole::is_paid) {
                g.admin_spaces
            } else {
                Vec::new()
            },
        }
    }

    /// Organization and site admins manage invites, roles, groups and settings.
    pub fn is_admin(&self) -> bool {
        self.org_admin || self.site_admin
    }

    /// Admins and paid users see the whole site (every space, the people directory, the guest list).
    pub fn sees_whole_site(&self) -> bool {
        self.is_admin() || self.role.is_some_and(ProductRole::is_paid)
    }

    /// Admins and product admins manage the site's spaces and may put guests in any of them.
    pub fn manages_spaces(&self) -> bool {
        self.is_admin() || self.role == Some(ProductRole::ProductAdmin)
    }

    /// May assign guests to `space` and take them out of it: space managers, and that space's admins.
    pub fn manages_guests_of(&self, space: Uuid) -> bool {
        self.manages_spaces() || self.admin_of_spaces.contains(&space)
    }

    /// May read and create content in `space`.
    pub fn reaches_space(&self, space: Uuid) -> bool {
        self.sees_whole_site()
            || (self.role == Some(ProductRole::Guest) && self.guest_space == Some(space))
    }

    /// Has any standing at all on the site (an admin role or an effective role).
    pub fn is_present(&self) -> bool {
        self.is_admin() || self.role.is_some()
    }

    /// Sees the site's guests and people's standing there: whoever sees it whole, and space admins.
    pub fn sees_guests(&self) -> bool {
        self.sees_whole_site() || !self.admin_of_spaces.is_empty()
    }

    /// Whether this standing allows `action` on its site. The store checks it with the standing it
    /// read for the change (`SiteAccess::require`), [`may_change`] with the request's [`Viewer`]: one
    /// function either way.
    pub fn may(&self, action: SiteAction) -> bool {
        match action {
            SiteAction::Manage => self.is_admin(),
            SiteAction::ManageSpaces => self.manages_spaces(),
            SiteAction::ManageGuestsOf { space } => self.manages_guests_of(space),
            SiteAction::WriteSpace { space } => self.reaches_space(space),
        }
    }
}

/// A change on one site that the changer's standing there decides alone ([`Standing::may`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteAction {
    /// Invites, product roles, settings, seat usage, removals, bulk files and sponsors of the site.
    Manage,
    /// Creating spaces and naming their admins.
    ManageSpaces,
    /// Putting guests in `space` or taking them out.
    ManageGuestsOf { space: Uuid },
    /// Creating pages in `space`.
    WriteSpace { space: Uuid },
}

/// Who is asking, with their standing on every site of their organization.
#[derive(Clone, Debug, Default)]
pub struct Viewer {
    pub user: Uuid,
    pub org: Uuid,
    pub org_admin: bool,
    /// Every site of the organization, with the viewer's standing there (default: none).
    pub sites: Vec<(Uuid, Standing)>,
    /// Whoever invited the viewer.
    pub invited_by: Option<Uuid>,
    /// The viewer's sponsors, on sites where the viewer is a guest.
    pub sponsors: Vec<Uuid>,
}

impl Viewer {
    /// The standing on `site`. `sites` holds every site of the viewer's organization, so a site
    /// missing from it is another organization's: no standing at all, even for an organization admin.
    pub fn on(&self, site: Uuid) -> &Standing {
        /// No standing: what a site of another organization, or one the viewer holds nothing on, gives.
        static NONE: Standing = Standing {
            org_admin: false,
            site_admin: false,
            role: None,
            guest_space: None,
            admin_of_spaces: Vec::new(),
        };
        self.sites
            .iter()
            .find(|(s, _)| *s == site)
            .map_or(&NONE, |(_, st)| st)
    }

    /// Staff are more than guests somewhere: admins, or paid users of at least one site.
    pub fn is_staff(&self) -> bool {
        self.org_admin || self.sites.iter().any(|(_, st)| st.sees_whole_site())
    }

    /// Sites the viewer administers as a site admin (or all, for an organization admin).
    fn administers(&self, site: Uuid) -> bool {
        self.on(site).is_admin()
    }

    fn site_admin_anywhere(&self) -> bool {
        self.sites.iter().any(|(_, st)| st.site_admin)
    }
}

/// A person as an object someone looks at: where they are present.
#[derive(Clone, Debug, Default)]
pub struct Person {
    pub id: Uuid,
    pub org: Uuid,
    pub org_admin: bool,
    /// Sites where they hold any grant (a role, a group with a role there, a site admin role, a
    /// guest space), whatever their effective role comes to.
    pub sites: Vec<Uuid>,
}

impl Person {
    fn present_on(&self, site: Uuid) -> bool {
        self.org_admin || self.sites.contains(&site)
    }
}

/// Everything a response can carry, as the policy sees it.
#[derive(Clone, Copy, Debug)]
pub enum Object<'a> {
    /// The organization's id, name and slug.
    Organization { org: Uuid },
    /// The organization's verified domains.
    OrganizationDomains { org: Uuid },
    /// A site's id and name.
    Site { site: Uuid },
    /// A site's limits and lifetimes.
    SiteSettings { site: Uuid },
    /// A site's seat usage, invites, bulk files, access reviews and billing.
    SiteAdministration { site: Uuid },
    /// A space and its pages.
    Space { site: Uuid, space: Uuid },
    /// How many guests a space has, and who administers it: the people who run the space, told to
    /// whoever sees the people of its site or manages its guests (not to the space's guests).
    SpaceGuests { site: Uuid, space: Uuid },
    /// A person's account: id and display name at least, the rest (their admin roles included) at
    /// [`Sight::Full`].
    Person(&'a Person),
    /// A person's standing on one site (role, space, end of access).
    PersonOnSite { person: &'a Person, site: Uuid },
    /// A person's security state (verification, last activity, two-step codes required, an
    /// authenticator app enrolled): themselves and admins.
    PersonSecurity(&'a Person),
    /// A group's id and name.
    Group { org: Uuid },
    /// A group's members and site roles; `sites` are the sites it holds a role on.
    GroupDetails { org: Uuid, sites: &'a [Uuid] },
    /// The audit trail and the external user security settings.
    OrganizationAdministration { org: Uuid },
    /// A session or an API token, and what is only the person's own (`me.access`).
    Own { owner: Uuid },
    /// A webhook endpoint of the organization: where its events go, and its settings.
    WebhookEndpoint { org: Uuid },
    /// A webhook delivery of the organization, with its payload and attempts.
    WebhookDelivery { org: Uuid },
}

/// How much of an object a viewer sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sight {
    Hidden,
    /// A person's id and display name only (a guest looking at their inviter or sponsor).
    NameOnly,
    Full,
}

impl Sight {
    pub fn of(allowed: bool) -> Self {
        if allowed { Self::Full } else { Self::Hidden }
    }
}

/// What `viewer` may see of `object`.
pub fn may_see(v: &Viewer, object: Object<'_>) -> Sight {
    use Object::*;
    match object {
        Organization { org } => Sight::of(org == v.org),
        OrganizationDomains { org } => Sight::of(org == v.org && v.is_staff()),
        OrganizationAdministration { org } => Sight::of(org == v.org && v.org_admin),
        Site { site } => Sight::of(v.on(site).is_present()),
        SiteSettings { site } => Sight::of(v.on(site).sees_whole_site()),
        SiteAdministration { site } => Sight::of(v.on(site).is_admin()),
        Space { site, space } => {
            let st = v.on(site);
            Sight::of(st.reaches_space(space) || st.manages_guests_of(space))
        }
        SpaceGuests { site, space } => {
            let st = v.on(site);
            Sight::of(st.sees_whole_site() || st.manages_guests_of(space))
        }
        Person(p) => person(v, p),
        PersonOnSite { person: p, site } => {
            Sight::of(person(v, p) == Sight::Full && (p.id == v.user || v.on(site).sees_guests()))
        }
        PersonSecurity(p) => Sight::of(
            p.org == v.org
                && (p.id == v.user
                    || v.org_admin
                    || (v.site_admin_anywhere() && person(v, p) == Sight::Full)),
        ),
        Group { org } => Sight::of(org == v.org && v.is_staff()),
        GroupDetails { org, sites } => Sight::of(
            org == v.org
                && (v.org_admin
                    || (!sites.is_empty() && sites.iter().all(|s| v.on(*s).sees_whole_site()))),
        ),
        Own { owner } => Sight::of(owner == v.user),
        // Webhooks send the organization's whole audit trail out: organization admins only, like
        // the audit trail itself.
        WebhookEndpoint { org } | WebhookDelivery { org } => Sight::of(org == v.org && v.org_admin),
    }
}

fn person(v: &Viewer, p: &Person) -> Sight {
    if p.org != v.org {
        return Sight::Hidden;
    }
    if p.id == v.user || v.org_admin {
        return Sight::Full;
    }
    // The people directory: whoever sees a site whole sees everyone present on it.
    let directory = v
        .sites
        .iter()
        .any(|(s, st)| st.sees_whole_site() && p.present_on(*s));
    // Space admins see the guests of their space (present on its site).
    let space_admin = v
        .sites
        .iter()
        .any(|(s, st)| !st.admin_of_spaces.is_empty() && p.present_on(*s));
    // Site admins also see accounts present nowhere, so they can give them access.
    let unplaced = v.site_admin_anywhere() && !p.org_admin && p.sites.is_empty();
    if directory || space_admin || unplaced {
        Sight::Full
    } else if v.invited_by == Some(p.id) || v.sponsors.contains(&p.id) {
        Sight::NameOnly
    } else {
        Sight::Hidden
    }
}

/// A change someone asks for.
#[derive(Clone, Copy, Debug)]
pub enum Action<'a> {
    /// Invites, product roles, settings, seat usage, removals, bulk files and sponsors of a site
    /// ([`SiteAction::Manage`]).
    ManageSite { site: Uuid },
    /// Creating spaces and naming their admins.
    ManageSpaces { site: Uuid },
    /// Putting guests in a space or taking them out.
    ManageGuestsOf { site: Uuid, space: Uuid },
    /// Creating pages in a space.
    WriteSpace { site: Uuid, space: Uuid },
    /// Creating a group (it reaches no site yet).
    CreateGroup { org: Uuid },
    /// Renaming, deleting, adding or removing members of a group that holds roles on `sites`, or
    /// letting an invite add people to it.
    ManageGroup { org: Uuid, sites: &'a [Uuid] },
    /// Giving or taking a group's role on `site` (it already holds roles on `sites`).
    SetGroupRole {
        org: Uuid,
        sites: &'a [Uuid],
        site: Uuid,
    },
    /// Requiring two-step codes of a person.
    SetTwoStepRequired(&'a Person),
    /// Organization-wide settings: admins, accounts, domains, the external user policy.
    ManageOrganization { org: Uuid },
    /// Registering, changing, deleting webhook endpoints, rotating their secrets, redelivering.
    ManageWebhooks { org: Uuid },
}

/// Whether `actor` may make the change.
pub fn may_change(a: &Viewer, action: Action<'_>) -> bool {
    use Action::*;
    match action {
        ManageSite { site } => a.on(site).may(SiteAction::Manage),
        ManageSpaces { site } => a.on(site).may(SiteAction::ManageSpaces),
        ManageGuestsOf { site, space } => a.on(site).may(SiteAction::ManageGuestsOf { space }),
        WriteSpace { site, space } => a.on(site).may(SiteAction::WriteSpace { space }),
        CreateGroup { org } => org == a.org && (a.org_admin || a.site_admin_anywhere()),
        // A group that reaches no site yet may later reach any: only organization admins.
        ManageGroup { org, sites } => {
            org == a.org
                && (a.org_admin || (!sites.is_empty() && sites.iter().all(|s| a.administers(*s))))
        }
        SetGroupRole { org, sites, site } => {
            org == a.org
                && (a.org_admin || (a.administers(site) && sites.iter().all(|s| a.administers(*s))))
        }
        // Site admins only for people whose every site is one they administer.
        SetTwoStepRequired(p) => {
            p.org == a.org
                && (a.org_admin
                    || (!p.org_admin
                        && !p.sites.is_empty()
                        && p.sites.iter().all(|s| a.administers(*s))))
        }
        ManageOrganization { org } => org == a.org && a.org_admin,
        ManageWebhooks { org } => org == a.org && a.org_admin,
    }
}

/// The object-visibility table of `docs/authorization.md`, computed from [`may_see`] over one
/// example world, so the document cannot drift from the code (a test compares them).
pub mod table {
    use super::*;

    const ORG: Uuid = Uuid::from_u128(1);
    const OTHER_ORG: Uuid = Uuid::from_u128(2);
    const S1: Uuid = Uuid::from_u128(11);
    const S2: Uuid = Uuid::from_u128(12);
    const A: Uuid = Uuid::from_u128(21);
    const B: Uuid = Uuid::from_u128(22);
    const INVITER: u128 = 101;

    fn viewer(user: u128, org_admin: bool, s1: Standing) -> Viewer {
        let s2 = Standing {
            org_admin,
            ..Default::default()
        };
        Viewer {
            user: Uuid::from_u128(user),
            org: ORG,
            org_admin,
            sites: vec![(S1, Standing { org_admin, ..s1 }), (S2, s2)],
            invited_by: Some(Uuid::from_u128(INVITER)),
            sponsors: Vec::new(),
        }
    }

    fn role(r: ProductRole) -> Standing {
        Standing {
            role: Some(r),
            ..Default::default()
        }
    }

    /// The people the table's columns are about (everyone on site 1 unless said otherwise).
    pub fn viewers() -> Vec<(&'static str, Viewer)> {
        let mut foreign = viewer(9, true, Standing::default());
        foreign.org = OTHER_ORG;
        foreign.sites = vec![(Uuid::from_u128(13), Standing::default())];
        vec![
            (
                "guest of space A",
                viewer(
                    1,
                    false,
                    Standing {
                        guest_space: Some(A),
                        ..role(ProductRole::Guest)
                    },
                ),
            ),
            (
                "unassigned guest",
                viewer(2, false, role(ProductRole::Guest)),
            ),
            ("paid user", viewer(3, false, role(ProductRole::User))),
            (
                "space admin of A",
                viewer(
                    4,
                    false,
                    Standing {
                        admin_of_spaces: vec![A],
                        ..role(ProductRole::User)
                    },
                ),
            ),
            (
                "site admin of site 1",
                viewer(
                    5,
                    false,
                    Standing {
                        site_admin: true,
                        ..Default::default()
                    },
                ),
            ),
            ("org admin", viewer(6, true, Standing::default())),
            ("admin of another org", foreign),
        ]
    }

    fn person(id: u128, sites: &[Uuid]) -> Person {
        Person {
            id: Uuid::from_u128(id),
            org: ORG,
            org_admin: false,
            sites: sites.to_vec(),
        }
    }

    /// One row of the table: what a viewer sees of one example object.
    type Row = Box<dyn Fn(&Viewer) -> Sight>;

    /// Renders the table: one row per object, one column per viewer.
    pub fn render() -> String {
        let inviter = person(INVITER, &[S1]);
        let other_guest = person(102, &[S1]);
        let site2_only = person(103, &[S2]);
        let unplaced = person(104, &[]);
        let rows: Vec<(&str, Row)> = vec![
            (
                "organization (`id`, `name`, `slug`)",
                Box::new(|v| may_see(v, Object::Organization { org: ORG })),
            ),
            (
                "organization's `verifiedDomains`",
                Box::new(|v| may_see(v, Object::OrganizationDomains { org: ORG })),
            ),
            (
                "site 1 (`id`, `name`)",
                Box::new(|v| may_see(v, Object::Site { site: S1 })),
            ),
            (
                "site 1's limits and lifetimes",
                Box::new(|v| may_see(v, Object::SiteSettings { site: S1 })),
            ),
            (
                "site 1's seat usage, invites, bulk files, billing, reviews",
                Box::new(|v| may_see(v, Object::SiteAdministration { site: S1 })),
            ),
            (
                "site 2, where the viewer has nothing",
                Box::new(|v| may_see(v, Object::Site { site: S2 })),
            ),
            (
                "space A and its pages",
                Box::new(|v| may_see(v, Object::Space { site: S1, space: A })),
            ),
            (
                "space B and its pages",
                Box::new(|v| may_see(v, Object::Space { site: S1, space: B })),
            ),
            (
                "space B's `guestCount`",
                Box::new(|v| may_see(v, Object::SpaceGuests { site: S1, space: B })),
            ),
            (
                "the viewer's own account",
                Box::new(|v| {
                    may_see(
                        v,
                        Object::Person(&Person {
                            id: v.user,
                            org: v.org,
                            org_admin: v.org_admin,
                            sites: vec![S1],
                        }),
                    )
                }),
            ),
            (
                "whoever invited the viewer (on site 1)",
                Box::new(move |v| may_see(v, Object::Person(&inviter))),
            ),
            (
                "another person of site 1",
                Box::new({
                    let p = other_guest.clone();
                    move |v| may_see(v, Object::Person(&p))
                }),
            ),
            (
                "their role, space, end of access on site 1",
                Box::new({
                    let p = other_guest.clone();
                    move |v| {
                        may_see(
                            v,
                            Object::PersonOnSite {
                                person: &p,
                                site: S1,
                            },
                        )
                    }
                }),
            ),
            (
                "their verification, last activity",
                Box::new(move |v| may_see(v, Object::PersonSecurity(&other_guest))),
            ),
            (
                "a person only on site 2",
                Box::new(move |v| may_see(v, Object::Person(&site2_only))),
            ),
            (
                "an account with access nowhere",
                Box::new(move |v| may_see(v, Object::Person(&unplaced))),
            ),
            (
                "a group (`id`, `name`)",
                Box::new(|v| may_see(v, Object::Group { org: ORG })),
            ),
            (
                "members and site roles of a group on site 1 only",
                Box::new(|v| {
                    may_see(
                        v,
                        Object::GroupDetails {
                            org: ORG,
                            sites: &[S1],
                        },
                    )
                }),
            ),
            (
                "members and site roles of a group on sites 1 and 2",
                Box::new(|v| {
                    may_see(
                        v,
                        Object::GroupDetails {
                            org: ORG,
                            sites: &[S1, S2],
                        },
                    )
                }),
            ),
            (
                "audit trail, external user security",
                Box::new(|v| may_see(v, Object::OrganizationAdministration { org: ORG })),
            ),
            (
                "webhook endpoints and their deliveries",
                Box::new(|v| {
                    may_see(v, Object::WebhookEndpoint { org: ORG })
                        .min(may_see(v, Object::WebhookDelivery { org: ORG }))
                }),
            ),
            (
                "someone else's sessions and API tokens",
                Box::new(|v| {
                    may_see(
                        v,
                        Object::Own {
                            owner: Uuid::from_u128(999),
                        },
                    )
                }),
            ),
        ];
        let viewers = viewers();
        let mut out = String::from("| object |");
        for (name, _) in &viewers {
            out.push_str(&format!(" {name} |"));
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(viewers.len()));
        out.push('\n');
        for (object, sight) in rows {
            out.push_str(&format!("| {object} |"));
            for (_, v) in &viewers {
                out.push_str(match sight(v) {
                    Sight::Full => " yes |",
                    Sight::NameOnly => " name |",
                    Sight::Hidden => " - |",
                });
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProductRole::*;

    /// `docs/authorization.md` shows the table [`table::render`] computes; run with
    /// `GUESTPASS_BLESS=1` to rewrite it after a deliberate change of the policy.
    #[test]
    fn the_documented_visibility_table_is_the_policy() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/authorization.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let (begin, end) = ("<!-- visibility:begin -->\n", "<!-- visibility:end -->");
        let start = doc.find(begin).expect("visibility markers") + begin.len();
        let stop = doc.find(end).expect("visibility markers");
        let table = table::render();
        if std::env::var_os("GUESTPASS_BLESS").is_some() {
            let new = format!("{}{}{}", &doc[..start], table, &doc[stop..]);
            std::fs::write(path, new).unwrap();
            return;
        }
        assert_eq!(
            doc[start..stop],
            table,
            "docs/authorization.md disagrees with the policy; run with GUESTPASS_BLESS=1"
        );
    }

    const ORG: Uuid = Uuid::from_u128(1);
    const S1: Uuid = Uuid::from_u128(11);
    const S2: Uuid = Uuid::from_u128(12);
    const SPACE_A: Uuid = Uuid::from_u128(21);
    const SPACE_B: Uuid = Uuid::from_u128(22);

    fn viewer(id: u128, sites: Vec<(Uuid, Standing)>) -> Viewer {
        Viewer {
            user: Uuid::from_u128(id),
            org: ORG,
            sites,
            ..Default::default()
        }
    }

    fn role(r: ProductRole) -> Standing {
        Standing {
            role: Some(r),
            ..Default::default()
        }
    }

    fn person(id: u128, sites: &[Uuid]) -> Person {
        Person {
            id: Uuid::from_u128(id),
            org: ORG,
            org_admin: false,
            sites: sites.to_vec(),
        }
    }

    #[test]
    fn standing_follows_the_effective_role() {
        let g = Grants {
            role: None,
            guest_space: Some(SPACE_A),
            admin_spaces: vec![SPACE_B],
            ..Default::default()
        };
        let st = Standing::from_grants(false, g);
        assert_eq!(st.role, None);
        assert_eq!(st.guest_space, None);
        assert!(st.admin_of_spaces.is_empty() && !st.is_present());
        let paid = Standing::from_grants(
            false,
            Grants {
                role: Some(User),
                admin_spaces: vec![SPACE_B],
                ..Default::default()
            },
        );
        assert!(paid.sees_whole_site() && paid.manages_guests_of(SPACE_B));
        assert!(!paid.manages_guests_of(SPACE_A) && !paid.manages_spaces());
    }

    #[test]
    fn a_guest_sees_only_their_space_and_names_of_inviter_and_sponsor() {
        let mut g = viewer(
            5,
            vec![(
                S1,
                Standing {
                    role: Some(Guest),
                    guest_space: Some(SPACE_A),
                    ..Default::default()
                },
            )],
        );
        g.invited_by = Some(Uuid::from_u128(6));
        g.sponsors = vec![Uuid::from_u128(7)];
        let sp = |space| Object::Space { site: S1, space };
        assert_eq!(may_see(&g, sp(SPACE_A)), Sight::Full);
        assert_eq!(may_see(&g, sp(SPACE_B)), Sight::Hidden);
        assert_eq!(may_see(&g, Object::Site { site: S1 }), Sight::Full);
        assert_eq!(may_see(&g, Object::Site { site: S2 }), Sight::Hidden);
        assert_eq!(
            may_see(&g, Object::SiteSettings { site: S1 }),
            Sight::Hidden
        );
        let inviter = person(6, &[S1]);
        let sponsor = person(7, &[S1]);
        let other_guest = person(8, &[S1]);
        assert_eq!(may_see(&g, Object::Person(&inviter)), Sight::NameOnly);
        assert_eq!(may_see(&g, Object::Person(&sponsor)), Sight::NameOnly);
        assert_eq!(may_see(&g, Object::Person(&other_guest)), Sight::Hidden);
        assert_eq!(may_see(&g, Object::Person(&person(5, &[S1]))), Sight::Full);
        assert_eq!(may_see(&g, Object::Group { org: ORG }), Sight::Hidden);
        assert_eq!(
            may_see(
                &g,
                Object::GroupDetails {
                    org: ORG,
                    sites: &[S1]
                }
            ),
            Sight::Hidden
        );
    }

    #[test]
    fn paid_users_see_the_directory_of_their_sites_only() {
        let p = viewer(5, vec![(S1, role(User))]);
        assert_eq!(may_see(&p, Object::Person(&person(8, &[S1]))), Sight::Full);
        assert_eq!(
            may_see(&p, Object::Person(&person(9, &[S2]))),
            Sight::Hidden
        );
        assert_eq!(may_see(&p, Object::Person(&person(9, &[]))), Sight::Hidden);
        let d = |sites| Object::GroupDetails { org: ORG, sites };
        assert_eq!(may_see(&p, d(&[S1])), Sight::Full);
        assert_eq!(may_see(&p, d(&[S1, S2])), Sight::Hidden);
        assert_eq!(may_see(&p, d(&[])), Sight::Hidden);
        assert_eq!(
            may_see(&p, Object::SiteAdministration { site: S1 }),
            Sight::Hidden
        );
    }

    #[test]
    fn nothing_crosses_organizations() {
        let mut admin = viewer(5, vec![]);
        admin.org_admin = true;
        let foreign = Person {
            org: Uuid::from_u128(2),
            ..person(9, &[S1])
        };
        assert_eq!(may_see(&admin, Object::Person(&foreign)), Sight::Hidden);
        assert_eq!(may_see(&admin, Object::Site { site: S1 }), Sight::Hidden);
        assert!(!may_change(&admin, Action::ManageSite { site: S1 }));
    }

    #[test]
    fn site_admins_reach_only_what_reaches_only_their_sites() {
        let sa = viewer(
            5,
            vec![(
                S1,
                Standing {
                    site_admin: true,
                    ..Default::default()
                },
            )],
        );
        let mg = |sites| Action::ManageGroup { org: ORG, sites };
        assert!(may_change(&sa, mg(&[S1])));
        assert!(!may_change(&sa, mg(&[S1, S2])));
        assert!(!may_change(&sa, mg(&[])), "a group reaching no site");
        let sr = |sites, site| Action::SetGroupRole {
            org: ORG,
            sites,
            site,
        };
        assert!(may_change(&sa, sr(&[], S1)));
        assert!(!may_change(&sa, sr(&[S2], S1)));
        assert!(!may_change(&sa, sr(&[], S2)));
        let two = |p: &Person| may_change(&sa, Action::SetTwoStepRequired(p));
        assert!(two(&person(8, &[S1])));
        assert!(!two(&person(8, &[S1, S2])));
        assert!(!two(&person(8, &[])));
        assert!(!two(&Person {
            org_admin: true,
            ..person(8, &[S1])
        }));
        assert_eq!(
            may_see(&sa, Object::Person(&person(9, &[S2]))),
            Sight::Hidden
        );
        assert_eq!(may_see(&sa, Object::Person(&person(9, &[]))), Sight::Full);
    }
    /// Webhooks carry the organization's audit trail out: only its organization admins see or
    /// manage them, never a site admin, a paid user or a guest, nor another organization's admin.
    #[test]
    fn webhooks_are_for_organization_admins_only() {
        for (name, v) in table::viewers() {
            let admin = name == "org admin";
            for object in [
                Object::WebhookEndpoint { org: ORG },
                Object::WebhookDelivery { org: ORG },
            ] {
                assert_eq!(may_see(&v, object), Sight::of(admin), "{name}: {object:?}");
            }
            assert_eq!(
                may_change(&v, Action::ManageWebhooks { org: ORG }),
                admin,
                "{name}"
            );
        }
    }

    /// What a client is told it may do (`viewerCan*`) and what the store lets it do are one
    /// decision: [`may_change`]'s site actions are the standing's [`Standing::may`], which the
    /// store's checks call.
    #[test]
    fn site_actions_are_the_standings_decision_for_flags_and_store_alike() {
        use SiteAction::*;
        let actions = [
            Manage,
            ManageSpaces,
            ManageGuestsOf { space: SPACE_A },
            ManageGuestsOf { space: SPACE_B },
            WriteSpace { space: SPACE_A },
        ];
        let as_action = |a: SiteAction| match a {
            Manage => Action::ManageSite { site: S1 },
            ManageSpaces => Action::ManageSpaces { site: S1 },
            ManageGuestsOf { space } => Action::ManageGuestsOf { site: S1, space },
            WriteSpace { space } => Action::WriteSpace { site: S1, space },
        };
        let mut viewers = table::viewers();
        viewers.push(("product admin", viewer(7, vec![(S1, role(ProductAdmin))])));
        let mut answers = Vec::new();
        for (name, v) in &viewers {
            let row: Vec<bool> = actions.iter().map(|a| v.on(S1).may(*a)).collect();
            for (a, may) in actions.iter().zip(&row) {
                assert_eq!(may_change(v, as_action(*a)), *may, "{name}: {a:?}");
            }
            answers.push((*name, row));
        }
        // Manage, ManageSpaces, guests of A, guests of B, write in A.
        let expected = [
            ("guest of space A", [false, false, false, false, true]),
            ("unassigned guest", [false, false, false, false, false]),
            ("paid user", [false, false, false, false, true]),
            ("space admin of A", [false, false, true, false, true]),
            ("site admin of site 1", [true, true, true, true, true]),
            ("org admin", [true, true, true, true, true]),
            ("admin of another org", [false, false, false, false, false]),
            ("product admin", [false, true, true, true, true]),
        ];
        let expected: Vec<(&str, Vec<bool>)> =
            expected.iter().map(|(n, r)| (*n, r.to_vec())).collect();
        assert_eq!(answers, expected);
    }

    /// A person's admin roles are part of their account (whoever sees it whole, themselves
    /// included); their two-step state is security state (themselves and admins); a space's admins
    /// go with its guests (not to the guests themselves).
    #[test]
    fn admin_roles_follow_the_account_and_two_step_state_the_security_state() {
        let guest = viewer(
            5,
            vec![(
                S1,
                Standing {
                    role: Some(Guest),
                    guest_space: Some(SPACE_A),
                    ..Default::default()
                },
            )],
        );
        let paid = viewer(6, vec![(S1, role(User))]);
        let space_admin = viewer(
            7,
            vec![(
                S1,
                Standing {
                    admin_of_spaces: vec![SPACE_A],
                    ..role(User)
                },
            )],
        );
        let site_admin = viewer(
            8,
            vec![(
                S1,
                Standing {
                    site_admin: true,
                    ..Default::default()
                },
            )],
        );
        let other = person(9, &[S1]);
        let full = |v: &Viewer, p: &Person| may_see(v, Object::Person(p)) == Sight::Full;
        let security =
            |v: &Viewer, p: &Person| may_see(v, Object::PersonSecurity(p)) == Sight::Full;
        for v in [&guest, &paid, &space_admin, &site_admin] {
            let me = person(v.user.as_u128(), &[S1]);
            assert!(full(v, &me) && security(v, &me), "{}", v.user);
        }
        assert!(!full(&guest, &other) && !security(&guest, &other));
        assert!(full(&paid, &other) && !security(&paid, &other));
        assert!(full(&space_admin, &other) && !security(&space_admin, &other));
        assert!(full(&site_admin, &other) && security(&site_admin, &other));
        let admins =
            |v: &Viewer, space| may_see(v, Object::SpaceGuests { site: S1, space }) == Sight::Full;
        assert!(!admins(&guest, SPACE_A));
        assert!(admins(&paid, SPACE_A) && admins(&space_admin, SPACE_A));
        assert!(admins(&site_admin, SPACE_B));
        assert!(admins(&site_admin, SPACE_A));
        assert!(
            may_see(
                &site_admin,
                Object::SpaceGuests {
                    site: S2,
                    space: SPACE_B
                }
            ) == Sight::Hidden
        );
    }
}
