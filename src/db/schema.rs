//! Diesel table definitions, kept in step with `migrations/` by hand (and checked by the test suite,
//! which runs every query against the migrated schema).

diesel::table! {
    organizations (id) {
        id -> Uuid,
        name -> Text,
        slug -> Text,
        created_at -> Timestamptz,
        guest_domain_mode -> Text,
    }
}

diesel::table! {
    verified_domains (organization_id, domain) {
        organization_id -> Uuid,
        domain -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    sites (id) {
        id -> Uuid,
        organization_id -> Uuid,
        name -> Text,
        user_limit -> Int4,
        guest_ratio -> Int4,
        invite_expiry_days -> Int4,
        created_at -> Timestamptz,
        max_guest_lifetime_days -> Nullable<Int4>,
        guest_reminder_days -> Int4,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        organization_id -> Uuid,
        email -> Text,
        email_normalized -> Text,
        display_name -> Text,
        password_hash -> Nullable<Text>,
        status -> Text,
        invited_by -> Nullable<Uuid>,
        two_step_required -> Bool,
        created_at -> Timestamptz,
        verified_at -> Nullable<Timestamptz>,
        reverify_notified_for -> Nullable<Timestamptz>,
        last_active_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    org_admins (organization_id, user_id) {
        organization_id -> Uuid,
        user_id -> Uuid,
        granted_at -> Timestamptz,
    }
}

diesel::table! {
    site_admins (site_id, user_id) {
        site_id -> Uuid,
        user_id -> Uuid,
        granted_at -> Timestamptz,
    }
}

diesel::table! {
    product_roles (site_id, user_id) {
        site_id -> Uuid,
        user_id -> Uuid,
        role -> Int2,
        granted_at -> Timestamptz,
    }
}

diesel::table! {
    site_paid_history (site_id, user_id) {
        site_id -> Uuid,
        user_id -> Uuid,
        first_paid_at -> Timestamptz,
    }
}

diesel::table! {
    groups (id) {
        id -> Uuid,
        organization_id -> Uuid,
        name -> Text,
        name_normalized -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    group_site_roles (group_id, site_id) {
        group_id -> Uuid,
        site_id -> Uuid,
        role -> Int2,
    }
}

diesel::table! {
    group_members (group_id, user_id) {
        group_id -> Uuid,
        user_id -> Uuid,
        added_by -> Nullable<Uuid>,
        added_at -> Timestamptz,
    }
}

diesel::table! {
    spaces (id) {
        id -> Uuid,
        site_id -> Uuid,
        key -> Text,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    space_admins (space_id, user_id) {
        space_id -> Uuid,
        user_id -> Uuid,
        granted_at -> Timestamptz,
    }
}

diesel::table! {
    guest_spaces (site_id, user_id) {
        site_id -> Uuid,
        user_id -> Uuid,
        space_id -> Uuid,
        assigned_at -> Timestamptz,
    }
}

diesel::table! {
    pages (id) {
        id -> Uuid,
        space_id -> Uuid,
        title -> Text,
        body -> Text,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    invites (id) {
        id -> Uuid,
        site_id -> Uuid,
        email -> Text,
        email_normalized -> Text,
        role -> Nullable<Int2>,
        space_id -> Nullable<Uuid>,
        personal_message -> Nullable<Text>,
        invited_by -> Uuid,
        token_nonce -> Bytea,
        status -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        accepted_at -> Nullable<Timestamptz>,
        accepted_user_id -> Nullable<Uuid>,
        revoked_at -> Nullable<Timestamptz>,
        access_ends_at -> Nullable<Timestamptz>,
        access_days -> Nullable<Int4>,
    }
}

diesel::table! {
    invite_groups (invite_id, group_id) {
        invite_id -> Uuid,
        group_id -> Uuid,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        token_hash -> Bytea,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        token_hash -> Bytea,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Int8,
        organization_id -> Uuid,
        actor_id -> Nullable<Uuid>,
        action -> Text,
        target_type -> Text,
        target_id -> Text,
        site_id -> Nullable<Uuid>,
        before -> Nullable<Jsonb>,
        after -> Nullable<Jsonb>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    email_deliveries (id) {
        id -> Uuid,
        organization_id -> Uuid,
        kind -> Text,
        invite_id -> Nullable<Uuid>,
        token_nonce -> Nullable<Bytea>,
        recipient -> Text,
        status -> Text,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        message_id -> Text,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        next_attempt_at -> Nullable<Timestamptz>,
        give_up_at -> Timestamptz,
        challenge_id -> Nullable<Uuid>,
        reset_id -> Nullable<Uuid>,
        reverify_id -> Nullable<Uuid>,
        notice_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    guest_terms (site_id, user_id) {
        site_id -> Uuid,
        user_id -> Uuid,
        sponsor_id -> Nullable<Uuid>,
        ends_at -> Nullable<Timestamptz>,
        reminded_for -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    guest_domain_rules (organization_id, pattern) {
        organization_id -> Uuid,
        pattern -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    bulk_invites (id) {
        id -> Uuid,
        organization_id -> Uuid,
        site_id -> Uuid,
        uploaded_by -> Nullable<Uuid>,
        status -> Text,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    bulk_invite_rows (bulk_id, line) {
        bulk_id -> Uuid,
        line -> Int4,
        email -> Text,
        role -> Nullable<Text>,
        space_key -> Nullable<Text>,
        group_names -> Array<Text>,
        personal_message -> Nullable<Text>,
        status -> Text,
        code -> Nullable<Text>,
        message -> Nullable<Text>,
        invite_id -> Nullable<Uuid>,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    notices (id) {
        id -> Uuid,
        kind -> Text,
        site_id -> Uuid,
        guest_id -> Uuid,
        recipient_id -> Uuid,
        ends_at -> Nullable<Timestamptz>,
        message -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    external_user_policies (organization_id) {
        organization_id -> Uuid,
        two_step -> Text,
        reverification_interval_minutes -> Int4,
        api_token_access -> Text,
        session_idle_timeout_minutes -> Nullable<Int4>,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Uuid>,
    }
}

diesel::table! {
    reverification_links (id) {
        id -> Uuid,
        user_id -> Uuid,
        token_nonce -> Bytea,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    reverification_sweeps (id) {
        id -> Int8,
        trigger -> Text,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        emailed -> Int4,
    }
}

diesel::table! {
    policy_reviews (id) {
        id -> Uuid,
        organization_id -> Uuid,
        policy -> Jsonb,
        fingerprint -> Bytea,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    login_challenges (id) {
        id -> Uuid,
        user_id -> Uuid,
        method -> Text,
        code_nonce -> Bytea,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        failed_attempts -> Int4,
        consumed_at -> Nullable<Timestamptz>,
        purpose -> Text,
    }
}

diesel::table! {
    password_resets (id) {
        id -> Uuid,
        user_id -> Uuid,
        token_nonce -> Bytea,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    totp_credentials (user_id) {
        user_id -> Uuid,
        secret -> Bytea,
        created_at -> Timestamptz,
        confirmed_at -> Nullable<Timestamptz>,
        last_used_step -> Nullable<Int8>,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Uuid,
        user_id -> Uuid,
        code_hash -> Bytea,
        created_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(sites -> organizations (organization_id));
diesel::joinable!(users -> organizations (organization_id));
diesel::joinable!(product_roles -> sites (site_id));
diesel::joinable!(product_roles -> users (user_id));
diesel::joinable!(group_members -> groups (group_id));
diesel::joinable!(group_members -> users (user_id));
diesel::joinable!(group_site_roles -> groups (group_id));
diesel::joinable!(spaces -> sites (site_id));
diesel::joinable!(pages -> spaces (space_id));
diesel::joinable!(invites -> sites (site_id));
diesel::joinable!(bulk_invite_rows -> bulk_invites (bulk_id));
diesel::joinable!(guest_spaces -> spaces (space_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(email_deliveries -> invites (invite_id));
diesel::joinable!(login_challenges -> users (user_id));
diesel::joinable!(password_resets -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    organizations,
    verified_domains,
    sites,
    users,
    org_admins,
    site_admins,
    product_roles,
    site_paid_history,
    groups,
    group_site_roles,
    group_members,
    spaces,
    space_admins,
    guest_spaces,
    pages,
    invites,
    invite_groups,
    api_tokens,
    sessions,
    audit_events,
    email_deliveries,
    login_challenges,
    password_resets,
    totp_credentials,
    recovery_codes,
    external_user_policies,
    reverification_links,
    reverification_sweeps,
    policy_reviews,
    guest_terms,
    notices,
    guest_domain_rules,
    bulk_invites,
    bulk_invite_rows,
);
