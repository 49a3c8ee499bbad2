// The mixin as the files this repository ships, for `jsonnet -S -m`: a function of the settings to
// change (config.libsonnet lists them), e.g. for a scrape job named emnify:
//   mkdir -p out && jsonnet -S -m out -e '(import "mixin/render.libsonnet")({jobSelector: "job=\"emnify\""})'
// writes out/emnify-recording-rules.yml, out/emnify-alert-rules.yml and the two dashboards.
function(config={})
  local mixin = (import 'mixin.libsonnet') + { _config+:: config };
  {
    'emnify-recording-rules.yml': std.manifestYamlDoc(mixin.prometheusRules, quote_keys=false) + '\n',
    'emnify-alert-rules.yml': std.manifestYamlDoc(mixin.prometheusAlerts, quote_keys=false) + '\n',
  } + {
    [name]: std.manifestJsonEx(mixin.grafanaDashboards[name], '  ') + '\n'
    for name in std.objectFields(mixin.grafanaDashboards)
  }
