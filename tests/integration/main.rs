//! The integration tests, in one binary so a change in `src/` relinks one test executable, not
//! sixteen: the exporter and the simulator over loopback, the binary as a child process, the shipped
//! dashboards, rules and manifests, and the layering of `src/`. `soak` and `perf` are `#[ignore]`d
//! (`scripts/test` runs the soak; `scripts/perf` the load harness).

mod common;

mod cli;
mod clock;
mod container_image;
mod dashboards;
mod deploy_manifests;
mod docs;
mod event_times;
mod exactly_once;
mod examples;
mod exposition;
mod faults;
mod http;
mod http_bounds;
mod kustomize;
mod landing_page;
mod layering;
mod local_stack;
mod mixin;
mod names;
mod overlap;
mod perf;
mod prometheus_e2e;
mod proxy;
mod push;
mod push_bounds;
mod python_sdk;
mod rate_limits;
mod readme_recipes;
mod release_links;
mod restart;
mod series_limits;
mod simulator_api;
mod soak;
mod start_up;
mod watchdog;
mod web_security;
