//! What the simulator's events look like: a weighted mix over emnify's catalogue, rendered with the quirks seen in emnify's docs.

use serde_json::{json, Value};

use crate::catalogue::EVENT_TYPES;
use crate::rng::SplitMix64;
use crate::timefmt::format_event_timestamp;

/// An organisation events belong to.
#[derive(Debug, Clone)]
pub struct Organisation {
    pub id: u64,
    pub name: &'static str,
}

/// The organisations of the simulated workspace.
pub const ORGANISATIONS: [Organisation; 3] = [
    Organisation { id: 719_710, name: "Sample Corp" },
    Organisation { id: 891_418, name: "Acme Logistics GmbH" },
    Organisation { id: 215_294, name: "Demo Company" },
];

/// An organisation whose name tests label escaping: quotes, backslashes, a newline, non-ASCII.
pub const HOSTILE_ORGANISATION: Organisation =
    Organisation { id: 666_001, name: "Quote\" Back\\slash\nNew line Ünïcode 日本 {x=\"y\"}" };

/// Devices per organisation.
pub const ENDPOINTS_PER_ORGANISATION: u64 = 25;

/// A kind of event the simulator produces, with the source, severity and alert flag emnify gives it.
pub struct Profile {
    pub event_type: u32,
    pub weight: u32,
    pub source: u32,
    pub severity: u32,
    pub alert: bool,
    /// Concerns a device (carries endpoint, SIM and IMSI objects).
    pub device: bool,
    pub descriptions: &'static [&'static str],
}

const fn p(
    event_type: u32,
    weight: u32,
    source: u32,
    severity: u32,
    alert: bool,
    device: bool,
    descriptions: &'static [&'static str],
) -> Profile {
    Profile { event_type, weight, source, severity, alert, device, descriptions }
}

/// Generic (id 0) disconnect descriptions, by cause.
pub const GENERIC_THROTTLING: &str = "Disconnecting data access for endpoint to apply throttling action.";
pub const GENERIC_QUOTA: &str = "Disconnecting data access for endpoint, because quota has been updated.";
pub const GENERIC_OTHER: &str = "Disconnecting data access for endpoint, because the service profile has changed.";

/// The everyday mix: network events dominate, as on a real fleet.
pub const PROFILES: &[Profile] = &[
    p(1, 220, 0, 0, false, true, &["New location received from VLR for IMSI='901430111111111', now attached to VLR='491720000095'."]),
    p(2, 200, 0, 0, false, true, &["New location received from SGSN for IMSI='901430111111111', now attached to SGSN='491720000095'."]),
    p(3, 160, 0, 0, false, true, &["New PDP Context successfully activated with SGSN CP=60.195.159.61, DP=117.72.59.30."]),
    p(3, 12, 1, 1, true, true, &[
        "Create PDP Context Request rejected because the device's quota volume is exhausted, and the defined action is to block data traffic.",
        "Create PDP Context rejected because the device doesn't have a quota.",
    ]),
    p(5, 150, 0, 0, false, true, &["PDP Context deleted."]),
    p(15, 20, 0, 0, false, true, &["Purge location received from VLR."]),
    p(16, 20, 0, 0, false, true, &["Purge GPRS location received from SGSN."]),
    p(0, 10, 1, 1, true, true, &[GENERIC_THROTTLING, GENERIC_QUOTA, GENERIC_OTHER]),
    p(18, 8, 1, 1, true, true, &["Quota threshold reached: 80% of the data quota used."]),
    p(19, 5, 1, 1, true, true, &["Quota used up."]),
    p(20, 3, 1, 1, true, true, &["SMS quota threshold reached."]),
    p(21, 2, 1, 1, true, true, &["SMS quota used up."]),
    p(11, 3, 1, 1, true, true, &["Endpoint blocked, because the monthly traffic limit was exceeded."]),
    p(12, 1, 1, 1, true, false, &["Blocking services for organisation, because monthly cost limit exceeded."]),
    p(8, 4, 2, 0, false, true, &["SIM status changed from Suspended to Activated."]),
    p(9, 3, 2, 0, false, true, &["SIM status changed from Activated to Suspended."]),
    p(42, 3, 2, 0, false, true, &["Endpoint enabled."]),
    p(43, 2, 2, 0, false, true, &["Endpoint disabled."]),
    p(6, 2, 2, 1, true, false, &["Failed authentication request from 'jane.doe@example.com', Reason: invalid password from IP 1.2.3.4"]),
    p(30, 2, 2, 0, false, false, &["OpenVPN client (re-)authenticated successfully"]),
    p(56, 2, 2, 0, false, true, &["Data quota assigned, action on exhaustion set to throttle."]),
    p(60, 1, 1, 0, false, true, &["Data quota expired."]),
    p(31, 1, 2, 0, false, false, &["Organisation updated."]),
    // emnify documents Critical as rare ("e.g. invoice charging failed") without naming its types.
    p(32, 3, 2, 2, true, false, &["Charging the monthly invoice failed."]),
];

/// Picks a profile by weight; with a small chance, any other current catalogue type (as an API/Info event).
pub fn pick_profile(rng: &mut SplitMix64) -> (u32, u32, u32, bool, bool, &'static str) {
    if rng.chance(0.02) {
        let current: Vec<&(u32, &str, bool)> = EVENT_TYPES.iter().filter(|t| t.2).collect();
        let (id, name, _) = current[rng.below(current.len() as u64) as usize];
        return (*id, 2, 0, false, false, name);
    }
    let total: u32 = PROFILES.iter().map(|p| p.weight).sum();
    let mut roll = rng.below(u64::from(total)) as u32;
    for profile in PROFILES {
        if roll < profile.weight {
            let d = profile.descriptions[rng.below(profile.descriptions.len() as u64) as usize];
            return (profile.event_type, profile.source, profile.severity, profile.alert, profile.device, d);
        }
        roll -= profile.weight;
    }
    let last = &PROFILES[PROFILES.len() - 1];
    (last.event_type, last.source, last.severity, last.alert, last.device, last.descriptions[0])
}

fn type_name(id: u32) -> &'static str {
    EVENT_TYPES.iter().find(|t| t.0 == id).map_or("Unknown", |t| t.1)
}

/// Everything needed to render one event.
pub struct EventSpec<'a> {
    pub id: u64,
    pub timestamp_millis: i64,
    pub event_type: u32,
    pub source: u32,
    pub severity: u32,
    pub alert: bool,
    pub description: &'a str,
    pub organisation: &'a Organisation,
    /// `Some(endpoint id)` for device events.
    pub endpoint: Option<u64>,
}

/// Renders an event as emnify would, varying the documented quirks; returns the JSON and the
/// timestamp as rendered (some forms drop the milliseconds).
pub fn render(spec: &EventSpec<'_>, rng: &mut SplitMix64) -> (String, i64) {
    let source_name = ["Network", "Policy Control", "API"][spec.source.min(2) as usize];
    let severity_spellings: &[&str] = match spec.severity {
        0 => &["Info", "Info", "Info", "INFO"],
        1 => &["Warn", "Warn", "WARN", "Warning"],
        _ => &["Critical"],
    };
    let severity_name = severity_spellings[rng.below(severity_spellings.len() as u64) as usize];
    let (timestamp, rendered_millis) = match rng.below(10) {
        0 => {
            let secs = spec.timestamp_millis.div_euclid(1000) * 1000;
            (format_event_timestamp(secs).replace(".000Z", "Z"), secs)
        }
        1 => {
            let secs = spec.timestamp_millis.div_euclid(1000) * 1000;
            (format_event_timestamp(secs).replace('T', " ").replace(".000Z", ""), secs)
        }
        2 => (format_event_timestamp(spec.timestamp_millis).replace('Z', "+0000"), spec.timestamp_millis),
        _ => (format_event_timestamp(spec.timestamp_millis), spec.timestamp_millis),
    };
    let source_key = if rng.chance(0.1) { "name" } else { "description" };
    let mut event = json!({
        "id": spec.id,
        "timestamp": timestamp,
        "alert": spec.alert,
        "description": spec.description,
        "event_type": {"id": spec.event_type, "description": type_name(spec.event_type)},
        "event_source": {"id": spec.source, source_key: source_name},
        "event_severity": {"id": spec.severity, "description": severity_name},
        "organisation": {"id": spec.organisation.id, "name": spec.organisation.name},
    });
    let Value::Object(map) = &mut event else { unreachable!("json! object literal") };
    if rng.chance(0.05) {
        map.insert("alert".into(), json!(u8::from(spec.alert)));
    }
    match spec.endpoint {
        Some(endpoint) => {
            let n = endpoint % 1_000_000;
            map.insert(
                "endpoint".into(),
                json!({"id": endpoint, "name": format!("Tracker {n}"), "ip_address": format!("10.176.{}.{}", n / 256 % 256, n % 256),
                       "tags": null, "imei": format!("3525{n:011}")}),
            );
            map.insert(
                "sim".into(),
                json!({"id": endpoint + 1_000_000, "iccid": format!("898830000{n:010}"), "production_date": "2020-12-23T13:02:11.000Z"}),
            );
            map.insert(
                "imsi".into(),
                json!({"id": endpoint + 2_000_000, "imsi": format!("90143{n:010}"), "import_date": "2020-12-23T13:02:11.000Z"}),
            );
        }
        None if rng.chance(0.5) => {
            for key in ["user", "endpoint", "sim", "imsi", "detail"] {
                map.insert(key.into(), Value::Null);
            }
        }
        None => {}
    }
    (event.to_string(), rendered_millis)
}

/// A well-formed JSON object that is not a readable event (the poison records a decoder must survive).
pub fn render_unreadable(kind: u64, id: u64) -> String {
    match kind % 3 {
        0 => json!({"timestamp": "2021-10-27T11:59:29.000Z", "event_type": {"id": 1}, "description": format!("record {id} without an id")})
            .to_string(),
        1 => json!({"id": id, "event_type": "Update location", "timestamp": "2021-10-27T11:59:29.000Z"}).to_string(),
        _ => json!({"id": {"nested": id}, "event_type": {"id": 3}, "description": format!("record {id} with an object id")})
            .to_string(),
    }
}
