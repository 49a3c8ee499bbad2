// The type the shipped dashboards are checked against (tests/grafana-schema/check.mjs): Grafana's own
// published dashboard model, `Dashboard` from @grafana/schema, with the slots that model leaves open
// (`Record<string, unknown>` or a generic parameter) filled with Grafana's published types for what these
// dashboards put there:
//   - each panel's `options` and `fieldConfig.defaults.custom`: its panel plugin's types from
//     @grafana/schema (stat, timeseries, bargauge, table; any other panel type fails);
//   - panel `targets` and annotation `target`: the Prometheus query type (`Dataquery` of
//     @grafana/grafana-foundation-sdk/prometheus; @grafana/schema does not ship the Prometheus plugin's).
//
// Where the types disagree with what Grafana really reads, the adaptation is as narrow as it can be:
//   Json<T>     The schema declares string enums as TypeScript enums (MappingType, ThresholdsMode,
//               FieldColorModeId, ...), which JSON cannot spell: each enum type is replaced by the union of
//               its values (`${E}`), so `"mode": "absolute"` passes and any other string still fails.
//               Numeric enums (VariableRefresh, VariableHide, VariableSort, DashboardCursorSync) accept
//               their member values as they are.
//   Stored<T>   Panel options and custom field config are stored sparsely: Grafana merges them over the
//               plugin's defaults when it loads a panel, so none of their properties is required in the
//               JSON (their types, and unknown keys, are still checked).
//   definition  Query variables carry `definition` (the query as the variable editor shows it); Grafana
//               writes it into every dashboard it saves (QueryVariableModel in @grafana/data) but the
//               schema's VariableModel lacks it.
//   titleFormat, textFormat, tagKeys, useValueForTime
//               The Prometheus datasource reads these from the annotation itself, beside `target`
//               (PrometheusAnnotationSupport.processEvents); the schema's AnnotationQuery lacks them.
//   _implementsDataqueryVariant
//               A TypeScript-only marker method of the SDK's query types; no JSON has it.
import type { AnnotationQuery, Dashboard, FieldConfigSource, Panel, RowPanel, VariableModel } from '@grafana/schema';
import type * as Stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as TimeSeries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';
import type * as BarGauge from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen';
import type * as Table from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';

/** A schema type as JSON can spell it: string enums become the union of their values. */
export type Json<T> = T extends string
  ? string extends T
    ? string
    : `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

/** A panel plugin's options as a dashboard stores them: every property optional, at every depth. */
export type Stored<T> = T extends string | number | boolean | null | undefined
  ? T
  : T extends ReadonlyArray<infer U>
    ? Array<Stored<U>>
    : T extends object
      ? { [K in keyof T]?: Stored<T[K]> }
      : T;

/** A Prometheus query (panel target or annotation target). */
export type PromQuery = Json<Omit<prometheus.Dataquery, '_implementsDataqueryVariant'>>;

/** A panel of plugin `Type`, its options and custom field config that plugin's published types. */
type PluginPanel<Type extends string, Options, Custom> = Omit<
  Json<Panel>,
  'type' | 'options' | 'fieldConfig' | 'targets'
> & {
  type: Type;
  options?: Json<Stored<Options>>;
  fieldConfig?: Omit<Json<FieldConfigSource>, 'defaults'> & {
    defaults: Omit<Json<FieldConfigSource['defaults']>, 'custom'> & { custom?: Json<Stored<Custom>> };
  };
  targets?: PromQuery[];
};

export type CheckedPanel =
  | PluginPanel<'stat', Stat.Options, {}>
  | PluginPanel<'timeseries', TimeSeries.Options, TimeSeries.FieldConfig>
  | PluginPanel<'bargauge', BarGauge.Options, {}>
  | PluginPanel<'table', Table.Options, Table.FieldConfig>
  | (Omit<Json<RowPanel>, 'panels'> & { panels: CheckedPanel[] });

/** An annotation from a Prometheus query. */
export type PromAnnotation = Omit<Json<AnnotationQuery>, 'target'> & {
  target?: PromQuery;
  titleFormat?: string;
  textFormat?: string;
  tagKeys?: string;
  useValueForTime?: boolean;
};

/** A template variable; query variables also carry `definition`. */
export type CheckedVariable = Json<VariableModel> & { definition?: string };

/** @grafana/schema's `Dashboard`, its open slots filled as above. */
export type CheckedDashboard = Omit<Json<Dashboard>, 'panels' | 'annotations' | 'templating'> & {
  panels?: CheckedPanel[];
  annotations?: { list?: PromAnnotation[] };
  templating?: { list?: CheckedVariable[] };
};
