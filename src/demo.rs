//! `serve --demo`: a small organization so GraphiQL has something to show.

use crate::domain::{EmailAddress, ProductRole};
use crate::error::AppResult;
use crate::state::AppState;
use crate::store::{access, content, invites, org};

pub async fn seed(state: &AppState) -> AppResult<()> {
    let now = state.clock.now();
    let policy = state.delivery.clone();
    let token = state
        .db
        .run(move |c| {
            let b = org::bootstrap(
                c,
                org::BootstrapInput {
                    org_name: "Demo Company".into(),
                    site_name: "Demo site".into(),
                    admin_email: EmailAddress::parse("admin@demo.example").expect("valid"),
                    user_limit: Some(50),
                    verified_domains: vec!["demo.example".into()],
                },
                now,
            )?;
            let caller = access::authenticate(c, &b.api_token, chrono::Duration::days(1), now)?
                .expect("token just created");
            let spaces = content::visible_spaces(c, &caller, b.site.id)?;
            if spaces.is_empty() {
                let eng = content::create_space(c, &caller, b.site.id, "ENG", "Engineering", now)?;
                content::create_space(c, &caller, b.site.id, "MKT", "Marketing campaign", now)?;
                content::create_page(
                    c,
                    &caller,
                    eng.id,
                    "Welcome",
                    "Guests of this space can read and add pages here.",
                    now,
                )?;
                invites::invite_users(
                    c,
                    &caller,
                    invites::NewInvites {
                        site_id: b.site.id,
                        emails: vec![
                            EmailAddress::parse("contractor@partner.example").expect("valid"),
                        ],
                        role: Some(ProductRole::Guest),
                        group_ids: Vec::new(),
                        access_ends_at: None,
                        access_days: None,
                        space_id: Some(eng.id),
                        personal_message: Some(
                            "Welcome aboard!\nThe spec is in the Welcome page.".into(),
                        ),
                        expires_in_days: None,
                    },
                    &policy,
                    now,
                )?;
            }
            Ok(b.api_token)
        })
        .await?;
    // Shown once so the demo can be explored in GraphiQL (Authorization: Bearer <token>).
    eprintln!("demo: organization `demo-company`, admin admin@demo.example, API token:\n{token}");
    Ok(())
}
