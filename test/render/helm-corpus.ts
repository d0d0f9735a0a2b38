/**
 * Charts for the differential test (helm-differential.test.ts): each is rendered by Signet's
 * engine and by `helm template` of the same Helm version with the same inputs.
 */
export interface HelmCase {
  readonly name: string;
  readonly files: Readonly<Record<string, string>>;
  readonly chart: string;
  readonly valuesFiles?: readonly string[];
  readonly values?: Readonly<Record<string, unknown>>;
  readonly includeCRDs?: boolean;
  readonly extraApiVersions?: readonly string[];
  /** When set, both must refuse, with a message matching this. */
  readonly fails?: RegExp;
}

const chart = (name: string, extra = ''): string =>
  `apiVersion: v2\nname: ${name}\nversion: 1.2.3\nappVersion: "2.0"\n${extra}`;

const configMap = (name: string, data: string): string =>
  `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n${data}`;

export const helmCases: readonly HelmCase[] = [
  {
    name: 'values files then inline values, in order',
    chart: 'app',
    valuesFiles: ['env/base.yaml', 'env/prod.yaml'],
    values: { replicas: 5, image: { tag: 'inline' } },
    files: {
      'app/Chart.yaml': chart('app'),
      'app/values.yaml':
        'replicas: 1\nimage:\n  repository: nginx\n  tag: chart\n  pullPolicy: IfNotPresent\nenv: dev\n',
      'env/base.yaml': 'image:\n  tag: base\nenv: base\nextra: base\n',
      'env/prod.yaml': 'env: prod\nimage:\n  pullPolicy: Always\n',
      'app/templates/deploy.yaml':
        'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n  namespace: {{ .Release.Namespace }}\nspec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web, env: {{ .Values.env }}, extra: {{ .Values.extra }}}\n    spec:\n      containers:\n        - name: web\n          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"\n          imagePullPolicy: {{ .Values.image.pullPolicy }}\n',
    },
  },
  {
    name: '_helpers.tpl with define/include/nindent and chart metadata',
    chart: 'web',
    files: {
      'web/Chart.yaml': chart('web'),
      'web/values.yaml': 'nameOverride: ""\n',
      'web/templates/_helpers.tpl':
        '{{- define "web.name" -}}{{ default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}{{- end }}\n{{- define "web.labels" -}}\napp.kubernetes.io/name: {{ include "web.name" . }}\nhelm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}\napp.kubernetes.io/version: {{ .Chart.AppVersion | quote }}\napp.kubernetes.io/managed-by: {{ .Release.Service }}\n{{- end }}\n',
      'web/templates/svc.yaml':
        'apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ include "web.name" . }}\n  labels:\n    {{- include "web.labels" . | nindent 4 }}\nspec:\n  ports: [{port: 80}]\n',
      'web/templates/NOTES.txt': 'Thanks for installing {{ .Release.Name }}',
    },
  },
  {
    name: 'range, with, toYaml, tpl',
    chart: 'c',
    values: { greeting: 'hi {{ .Release.Name }}' },
    files: {
      'c/Chart.yaml': chart('c'),
      'c/values.yaml':
        'queues: [alpha, beta, gamma]\nlimits:\n  cpu: 100m\n  memory: 64Mi\nsettings: {}\ngreeting: hello\n',
      'c/templates/cm.yaml': configMap(
        'c',
        '  {{- range $i, $q := .Values.queues }}\n  queue-{{ $i }}: {{ $q | upper | quote }}\n  {{- end }}\n  {{- with .Values.limits }}\n  limits: |\n    {{- toYaml . | nindent 4 }}\n  {{- end }}\n  {{- with .Values.settings }}\n  settings: set\n  {{- end }}\n  greeting: {{ tpl .Values.greeting . | quote }}\n',
      ),
    },
  },
  {
    name: 'required passes when set',
    chart: 'r',
    values: { host: 'example.com' },
    files: {
      'r/Chart.yaml': chart('r'),
      'r/templates/cm.yaml': configMap(
        'r',
        '  host: {{ required "host is required" .Values.host | quote }}\n',
      ),
    },
  },
  {
    name: 'required refuses when unset',
    chart: 'r',
    fails: /host is required/,
    files: {
      'r/Chart.yaml': chart('r'),
      'r/templates/cm.yaml': configMap(
        'r',
        '  host: {{ required "host is required" .Values.host | quote }}\n',
      ),
    },
  },
  {
    name: 'fail refuses',
    chart: 'f',
    values: { mode: 'bad' },
    fails: /mode must be fast or safe/,
    files: {
      'f/Chart.yaml': chart('f'),
      'f/templates/cm.yaml': `{{- if not (has .Values.mode (list "fast" "safe")) }}{{ fail "mode must be fast or safe" }}{{ end }}\n${configMap('f', '  mode: {{ .Values.mode }}\n')}`,
    },
  },
  {
    name: 'subcharts with global and scoped values, a vendored archive-free dependency, condition',
    chart: 'parent',
    values: { child: { size: 'large' }, global: { region: 'eu' } },
    files: {
      'parent/Chart.yaml': chart(
        'parent',
        'dependencies:\n  - name: child\n    version: 0.1.0\n    repository: https://charts.example.com\n  - name: off\n    version: 0.1.0\n    condition: off.enabled\n',
      ),
      'parent/values.yaml': 'global:\n  team: platform\nchild:\n  size: small\noff:\n  enabled: false\n',
      'parent/templates/cm.yaml': configMap(
        'parent',
        '  team: {{ .Values.global.team }}\n  region: {{ .Values.global.region }}\n',
      ),
      'parent/charts/child/Chart.yaml': 'apiVersion: v2\nname: child\nversion: 0.1.0\n',
      'parent/charts/child/values.yaml': 'size: tiny\ncolor: blue\n',
      'parent/charts/child/templates/cm.yaml': configMap(
        '{{ .Release.Name }}-child',
        '  size: {{ .Values.size }}\n  color: {{ .Values.color }}\n  team: {{ .Values.global.team }}\n  region: {{ .Values.global.region }}\n  chart: {{ .Chart.Name }}\n',
      ),
      'parent/charts/off/Chart.yaml': 'apiVersion: v2\nname: off\nversion: 0.1.0\n',
      'parent/charts/off/templates/cm.yaml': configMap('off', '  x: "1"\n'),
    },
  },
  {
    name: 'crds/ directory first, of the chart and its subchart',
    chart: 'op',
    includeCRDs: true,
    files: {
      'op/Chart.yaml': chart('op', 'dependencies:\n  - name: sub\n    version: 0.1.0\n'),
      'op/crds/widgets.yaml':
        'apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]\n',
      'op/templates/widget.yaml': 'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n',
      'op/templates/sa.yaml': 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: op\n',
      'op/charts/sub/Chart.yaml': 'apiVersion: v2\nname: sub\nversion: 0.1.0\n',
      'op/charts/sub/crds/gadgets.yaml':
        'apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gadgets.example.com\n',
    },
  },
  {
    name: 'hooks with weights after the manifests, test hooks too',
    chart: 'h',
    files: {
      'h/Chart.yaml': chart('h'),
      'h/templates/cm.yaml': configMap('h', '  a: "1"\n'),
      'h/templates/job-late.yaml':
        'apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: late\n  annotations:\n    helm.sh/hook: post-install\n    helm.sh/hook-weight: "5"\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n',
      'h/templates/job-early.yaml':
        'apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: early\n  annotations:\n    helm.sh/hook: pre-install\n    helm.sh/hook-weight: "-5"\n    helm.sh/hook-delete-policy: before-hook-creation\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n',
      'h/templates/secret-hook.yaml':
        'apiVersion: v1\nkind: Secret\nmetadata:\n  name: hook-secret\n  annotations:\n    helm.sh/hook: pre-install,pre-upgrade\n    helm.sh/hook-weight: "0"\nstringData: {k: v}\n',
      'h/templates/tests/test.yaml':
        'apiVersion: v1\nkind: Pod\nmetadata:\n  name: h-test\n  annotations:\n    helm.sh/hook: test\nspec:\n  containers: [{name: t, image: busybox}]\n',
    },
  },
  {
    name: '.Capabilities.APIVersions.Has and KubeVersion',
    chart: 'cap',
    extraApiVersions: ['monitoring.coreos.com/v1', 'example.com/v1/Widget'],
    files: {
      'cap/Chart.yaml': chart('cap', 'kubeVersion: ">=1.20.0-0"\n'),
      'cap/templates/cm.yaml': configMap(
        'cap',
        '  monitoring: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" | quote }}\n  widget: {{ .Capabilities.APIVersions.Has "example.com/v1/Widget" | quote }}\n  apps: {{ .Capabilities.APIVersions.Has "apps/v1" | quote }}\n  absent: {{ .Capabilities.APIVersions.Has "nope.example.com/v9" | quote }}\n  kube: {{ .Capabilities.KubeVersion.Version }}\n  minor: {{ .Capabilities.KubeVersion.Minor | quote }}\n  helm: {{ .Capabilities.HelmVersion.Version }}\n',
      ),
      'cap/templates/sm.yaml':
        '{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: cap\n{{- end }}\n',
    },
  },
  {
    name: 'values.schema.json accepts good values',
    chart: 's',
    values: { port: 8080 },
    files: {
      's/Chart.yaml': chart('s'),
      's/values.yaml': 'port: 80\n',
      's/values.schema.json':
        '{"$schema":"https://json-schema.org/draft-07/schema#","type":"object","properties":{"port":{"type":"integer","minimum":1,"maximum":65535}},"required":["port"]}',
      's/templates/cm.yaml': configMap('s', '  port: {{ .Values.port | quote }}\n'),
    },
  },
  {
    name: 'values.schema.json rejects bad values with a clear message',
    chart: 's',
    values: { port: 'eighty' },
    fails: /values don't meet the specifications of the schema[\s\S]*port/,
    files: {
      's/Chart.yaml': chart('s'),
      's/values.yaml': 'port: 80\n',
      's/values.schema.json':
        '{"$schema":"https://json-schema.org/draft-07/schema#","type":"object","properties":{"port":{"type":"integer"}}}',
      's/templates/cm.yaml': configMap('s', '  port: {{ .Values.port | quote }}\n'),
    },
  },
  {
    name: '.Files.Get, .Files.Glob.AsConfig, lookup returns empty',
    chart: 'files',
    files: {
      'files/Chart.yaml': chart('files'),
      'files/conf/a.conf': 'alpha=1\n',
      'files/conf/b.conf': 'beta=2\n',
      'files/templates/cm.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: files\ndata:\n  a: {{ .Files.Get "conf/a.conf" | quote }}\n  missing: {{ .Files.Get "nope.txt" | quote }}\n  looked: {{ (lookup "v1" "Secret" "kube-system" "x") | toJson | quote }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: glob\ndata:\n{{ (.Files.Glob "conf/*").AsConfig | indent 2 }}\n',
    },
  },
  {
    name: 'a vendored .tgz dependency is rendered',
    chart: 'tgz',
    files: {
      'tgz/Chart.yaml': chart('tgz', 'dependencies:\n  - name: packed\n    version: 0.1.0\n'),
      'tgz/templates/cm.yaml': configMap('tgz', '  a: "1"\n'),
      // filled in by the test (an archive built at run time)
    },
  },
];
