// The recording rules (deploy/prometheus/emnify-recording-rules.yml, whose comments explain each
// one), with the job selector from the config.
{
  prometheusRules+:: {
    local c = $._config,
    groups+: [
      {
        name: "emnify-generic.rules",
        rules: [
          {
            record: "organisation:emnify_generic_events:increase10m",
            expr: |||
              max by (organisation_id) (
                sum by (instance, organisation_id) (
                  increase(emnify_events_total{%(jobSelector)s, event_type_id="0"}[10m])
                )
              )
            ||| % c,
          },
          {
            record: "organisation:emnify_generic_events:increase5m",
            expr: |||
              max by (organisation_id) (
                sum by (instance, organisation_id) (
                  increase(emnify_events_total{%(jobSelector)s, event_type_id="0"}[5m])
                )
              )
            ||| % c,
          },
          {
            record: "organisation:emnify_generic_events:baseline_increase10m",
            expr: |||
              avg_over_time(organisation:emnify_generic_events:increase10m[1d] offset 1h)
            |||,
          },
          {
            record: "organisation:emnify_generic_events:same_time_1d_increase10m",
            expr: |||
              max_over_time(organisation:emnify_generic_events:increase10m[30m] offset 23h45m)
            |||,
          },
          {
            record: "organisation:emnify_generic_events:same_time_7d_increase10m",
            expr: |||
              max_over_time(organisation:emnify_generic_events:increase10m[30m] offset 6d23h45m)
            |||,
          },
          {
            record: "organisation:emnify_generic_events:expected_increase10m",
            expr: |||
              max by (organisation_id) (
                  label_replace(organisation:emnify_generic_events:baseline_increase10m, "basis", "recent", "", "")
                or
                  label_replace(organisation:emnify_generic_events:same_time_1d_increase10m, "basis", "1d", "", "")
                or
                  label_replace(organisation:emnify_generic_events:same_time_7d_increase10m, "basis", "7d", "", "")
              )
            |||,
          },
          {
            record: "organisation:emnify_generic_events:spike_ratio5m",
            expr: |||
              2 * organisation:emnify_generic_events:increase5m
                / on (organisation_id)
              clamp_min(organisation:emnify_generic_events:expected_increase10m, 1)
            |||,
          },
          {
            record: "organisation:emnify_generic_events:spike_ratio10m",
            expr: |||
              organisation:emnify_generic_events:increase10m
                / on (organisation_id)
              clamp_min(organisation:emnify_generic_events:expected_increase10m, 1)
            |||,
          },
          {
            record: "organisation_cause:emnify_generic_events:increase10m",
            expr: |||
              max by (organisation_id, cause) (
                sum by (instance, organisation_id, cause) (
                  increase(emnify_generic_events_total{%(jobSelector)s}[10m])
                )
              )
            ||| % c,
          },
          {
            record: "organisation:emnify_organisation:info",
            expr: |||
              topk by (organisation_id) (1,
                max by (organisation_id, organisation) (emnify_organisation_info{%(jobSelector)s})
              )
            ||| % c,
          },
        ],
      },
    ],
  },
}
