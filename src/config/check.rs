//! [`ExporterArgs::into_config`]: what clap cannot check (the secrets and how the settings combine),
//! turning the flags into a [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use hyper::header::HeaderName;

use super::args::ExporterArgs;
use super::env::{TOKEN_ENV, WEBHOOK_PASSWORD_ENV, WEBHOOK_SECRET_ENV};
use super::types::{Config, ConfigError, PollConfig};
use crate::emnify::TokenSource;
use crate::http::HttpLimits;
use crate::metrics::SeriesLimits;
use crate::poller::PollerSettings;
use crate::receiver::ReceiverSettings;
use crate::secret::Secret;
use crate::tally::TallySettings;

impl ExporterArgs {
    /// Checks what clap cannot: the secrets and how they combine. `env` reads an environment
    /// variable (the secrets are never flags, so they never show in process listings).
    pub fn into_config(self, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let push = if self.ingest_mode.receives() { Some(self.receiver_settings(&env)?) } else { None };
        let poll = if self.ingest_mode.polls() { Some(self.poll_config(&env)?) } else { None };
        let watchdog = self.watchdog.settings(super::watchdog::WatchdogContext {
            receives: self.ingest_mode.receives(),
            api_url: &self.api_url,
            webhook_path: &self.webhook_path,
            token: if self.ingest_mode.receives() { self.token(&env)? } else { None },
            request_timeout: self.request_timeout,
            request_budget_share: (self.request_budget_share > 0.0).then_some(self.request_budget_share),
        });
        // The web configuration and the state file are checked at start-up (`App::build`), where
        // they are used: a check here would read them twice and could pass for a file changed between.
        Ok(Config {
            api_url: self.api_url,
            listen_address: self.listen_address,
            telemetry_path: self.telemetry_path,
            web_config_file: self.web_config_file,
            http: HttpLimits {
                max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
                max_header_bytes: self.max_header_size,
                max_tls_handshakes: usize::try_from(self.max_tls_handshakes).unwrap_or(usize::MAX),
                ..HttpLimits::default()
            },
            state_file: self.state_file,
            tally: TallySettings {
                lookback: self.lookback,
                max_remembered_ids: usize::try_from(self.max_remembered_ids).unwrap_or(usize::MAX),
                // With a poller, a pushed id is kept as long as polled ones (what polling read completely
                // is never counted again when pushed); without one, as long as asked.
                remember_pushed: if self.ingest_mode.polls() { self.overlap } else { self.webhook_remember },
                push_stale_after: self.webhook_stale_after,
                polls: self.ingest_mode.polls(),
                ..TallySettings::default()
            },
            series: SeriesLimits {
                max_organisations: usize::try_from(self.max_organisations).unwrap_or(usize::MAX),
                max_label_length: usize::try_from(self.max_label_length).unwrap_or(usize::MAX),
                max_unknown_event_types: usize::try_from(self.max_unknown_event_types).unwrap_or(usize::MAX),
            },
            poll,
            push,
            demo: self.demo,
            watchdog,
        })
    }

    /// The application token, if one is given: from the variable or the file (not both); in the demo the
    /// simulator's own (a real one from the environment is never sent to it).
    fn token(&self, env: &impl Fn(&str) -> Option<String>) -> Result<Option<TokenSource>, ConfigError> {
        let token_env = env(TOKEN_ENV).filter(|t| !t.is_empty());
        Ok(Some(match (token_env, &self.application_token_file) {
            _ if self.demo => TokenSource::Value(Secret::new(crate::simulator::DEMO_APPLICATION_TOKEN)),
            (Some(_), Some(_)) => {
                return Err(ConfigError::of(
                    "--emnify.application-token-file",
                    "EMNIFY_APPLICATION_TOKEN is set too; set only one of them",
                ))
            }
            (Some(t), None) => TokenSource::Value(Secret::new(t)),
            (None, Some(path)) => {
                if let Err(e) = std::fs::metadata(path) {
                    return Err(ConfigError::of(
                        "--emnify.application-token-file",
                        format!("cannot read {}: {e}", path.display()),
                    ));
                }
                TokenSource::File(path.clone())
            }
            (None, None) => return Ok(None),
        }))
    }

    /// The poll part: an application token is needed, except in the demo, which polls its own simulator.
    fn poll_config(&self, env: &impl Fn(&str) -> Option<String>) -> Result<PollConfig, ConfigError> {
        let token = self.token(env)?.ok_or_else(|| {
            ConfigError::general(
                "no emnify application token: set EMNIFY_APPLICATION_TOKEN or --emnify.application-token-file \
                 (or run with --demo)",
            )
        })?;
        let default_interval = if self.demo { Duration::from_secs(5) } else { Duration::from_secs(60) };
        Ok(PollConfig {
            token,
            interval: self.poll_interval.unwrap_or(default_interval),
            request_timeout: self.request_timeout,
            min_request_interval: self.min_request_interval,
            request_budget_share: (self.request_budget_share > 0.0).then_some(self.request_budget_share),
            walk: PollerSettings {
                page_size: self.page_size,
                overlap: self.overlap,
                requests_in_flight: self.requests_in_flight as usize,
            },
        })
    }

    fn receiver_settings(&self, env: &impl Fn(&str) -> Option<String>) -> Result<ReceiverSettings, ConfigError> {
        let from_env_or_file = |var: &str, file: &Option<PathBuf>, flag| -> Result<Option<Secret>, ConfigError> {
            match (env(var).filter(|v| !v.is_empty()), file) {
                (Some(_), Some(_)) => Err(ConfigError::of(flag, format!("{var} is set too; set only one of them"))),
                (Some(v), None) => Ok(Some(Secret::new(v))),
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| ConfigError::of(flag, format!("cannot read {}: {e}", path.display())))?;
                    let value = text.strip_suffix('\n').unwrap_or(&text).to_string();
                    if value.is_empty() {
                        return Err(ConfigError::of(flag, format!("{} is empty", path.display())));
                    }
                    Ok(Some(Secret::new(value)))
                }
                (None, None) => Ok(None),
            }
        };
        let secret = from_env_or_file(WEBHOOK_SECRET_ENV, &self.webhook_secret_file, "--webhook.secret-file")?;
        let password = from_env_or_file(
            WEBHOOK_PASSWORD_ENV,
            &self.webhook_basic_auth_password_file,
            "--webhook.basic-auth-password-file",
        )?;
        let basic_auth = match (&self.webhook_basic_auth_user, password) {
            (Some(user), Some(password)) => Some((user.clone(), password)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::of(
                    "--webhook.basic-auth-user",
                    "needs a password (EMNIFY_EXPORTER_WEBHOOK_BASIC_AUTH_PASSWORD or \
                     --webhook.basic-auth-password-file)",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::general("a webhook basic-auth password needs --webhook.basic-auth-user"))
            }
        };
        // The demo's set-up makes up a secret for its own streamer when none is given.
        if secret.is_none() && basic_auth.is_none() && !self.webhook_insecure_no_auth && !self.demo {
            return Err(ConfigError::of(
                "--ingest.mode",
                "push and both need push credentials: EMNIFY_EXPORTER_WEBHOOK_SECRET (or \
                 --webhook.secret-file) and/or --webhook.basic-auth-user; or --webhook.insecure-no-auth to accept \
                 pushes from anyone",
            ));
        }
        let header = HeaderName::from_bytes(self.webhook_secret_header.as_bytes()).map_err(|_| {
            ConfigError::of("--webhook.secret-header", format!("{:?} is not a header name", self.webhook_secret_header))
        })?;
        if self.webhook_path == self.telemetry_path {
            return Err(ConfigError::of("--webhook.path", "must differ from --web.telemetry-path"));
        }
        Ok(ReceiverSettings {
            path: self.webhook_path.clone(),
            secret_header: secret.map(|s| (header, s)),
            basic_auth,
            insecure_no_auth: self.webhook_insecure_no_auth,
            max_body_bytes: self.webhook_max_body_size,
            max_records: usize::try_from(self.webhook_max_records).unwrap_or(usize::MAX),
            read_timeout: self.webhook_read_timeout,
            max_concurrent: self.webhook_max_concurrent as usize,
        })
    }
}
