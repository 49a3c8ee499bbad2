// The emnify-exporter monitoring mixin: prometheusRules, prometheusAlerts and grafanaDashboards, as
// node_exporter's node-mixin has them, with the settings in _config (config.libsonnet).
//   local emnify = (import 'mixin/mixin.libsonnet') + { _config+:: { jobSelector: 'job="emnify"' } };
(import 'config.libsonnet') +
(import 'rules.libsonnet') +
(import 'alerts.libsonnet') +
(import 'dashboards.libsonnet')
