//! The emnify event-type catalogue built into the exporter, used when `GET /api/v1/event/type` is unavailable.

/// `(id, name, still emitted by current platforms)` for every event type emnify has documented.
pub const EVENT_TYPES: &[(u32, &str, bool)] = &[
    (0, "Generic", true),
    (1, "Update location", true),
    (2, "Update GPRS location", true),
    (3, "Create PDP Context", true),
    (4, "Update PDP Context", false),
    (5, "Delete PDP Context", true),
    (6, "User authentication failed", true),
    (7, "Application authentication failed", true),
    (8, "SIM activation", true),
    (9, "SIM suspension", true),
    (10, "SIM deletion", true),
    (11, "Endpoint blocked", true),
    (12, "Organisation blocked", true),
    (13, "Support Access", true),
    (14, "Multi-factor Authentication", true),
    (15, "Purge location", true),
    (16, "Purge GPRS location", true),
    (17, "Self-Signup", true),
    (18, "Quota threshold reached", true),
    (19, "Quota used up", true),
    (20, "SMS quota threshold reached", true),
    (21, "SMS quota used up", true),
    (22, "CloudConnect TGW Resource Share created", true),
    (23, "CloudConnect TGW available", true),
    (25, "CloudConnect TGW breakout terminated", true),
    (26, "CloudConnect VPN breakout terminated", false),
    (27, "CloudConnect Connection State Changed", false),
    (28, "OpenVPN connect", false),
    (29, "OpenVPN disconnect", false),
    (30, "OpenVPN authentication", true),
    (31, "Organisation updated", true),
    (32, "Billing configuration updated", true),
    (33, "Tariff plan updated", true),
    (34, "Usage tariff updated", true),
    (36, "User invited", true),
    (37, "Password reset requested", true),
    (38, "Order submitted", true),
    (39, "Order updated", true),
    (40, "User verification requested", true),
    (41, "User verified", true),
    (42, "Endpoint enabled", true),
    (43, "Endpoint disabled", true),
    (44, "SIM issued", false),
    (45, "SIM factory test", true),
    (46, "User deleted", true),
    (48, "SIM registration", true),
    (49, "Device offline", false),
    (50, "SIM Released", true),
    (51, "SIM Assigned", true),
    (52, "Data quota enabled", true),
    (53, "Data quota disabled", true),
    (54, "SMS quota enabled", true),
    (55, "SMS quota disabled", true),
    (56, "Data quota assigned", true),
    (57, "Data quota deleted", true),
    (58, "SMS quota assigned", true),
    (59, "SMS quota deleted", true),
    (60, "Data quota expired", true),
    (67, "User switched workspaces", true),
    (68, "Reset connectivity", true),
    (69, "SIM migration", true),
];

/// The canonical name of an event source id (`event_source.id`).
pub fn source_name(id: Option<u32>) -> &'static str {
    match id {
        Some(0) => "Network",
        Some(1) => "Policy Control",
        Some(2) => "API",
        _ => "unknown",
    }
}

/// The canonical name of an event severity id (`event_severity.id`); spellings in payloads vary.
pub fn severity_name(id: Option<u32>) -> &'static str {
    match id {
        Some(0) => "Info",
        Some(1) => "Warn",
        Some(2) => "Critical",
        _ => "unknown",
    }
}

/// The id of the `Generic` event type: a data session disconnected to apply throttling or a quota update.
pub const GENERIC_EVENT_TYPE: u32 = 0;

/// Why a `Generic` event disconnected a device, read from its description.
pub fn generic_cause(description: &str) -> &'static str {
    let lower = description.to_ascii_lowercase();
    if lower.contains("throttl") {
        "throttling"
    } else if lower.contains("quota") {
        "quota_update"
    } else {
        "other"
    }
}

/// Every value [`generic_cause`] returns, for zero-initialising series.
pub const GENERIC_CAUSES: [&str; 3] = ["throttling", "quota_update", "other"];
