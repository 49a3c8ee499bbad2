// The Grafana dashboards (dashboards/*.json). They select the exporter through their `job` variable
// and read the recording rules, so only the notes that name the job change with the selector.
local withSelector(value, selector) =
  if std.isString(value) then std.strReplace(value, 'job=\\"emnify-exporter\\"', selector)
  else if std.isArray(value) then [withSelector(v, selector) for v in value]
  else if std.isObject(value) then { [k]: withSelector(value[k], selector) for k in std.objectFields(value) }
  else value;

// (importstr takes only a literal path: one line a dashboard.)
local shipped = {
  'emnify-events.json': importstr '../dashboards/emnify-events.json',
  'emnify-exporter-health.json': importstr '../dashboards/emnify-exporter-health.json',
};

{
  grafanaDashboards+:: {
    [name]: withSelector(std.parseJson(shipped[name]), $._config.jobSelector)
    for name in std.objectFields(shipped)
  },
}
