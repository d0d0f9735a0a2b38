/**
 * Kustomize layouts for the differential test (test/render/kustomize-differential.test.ts): each is
 * a repository tree (path → content) and the directory to build.
 */
export interface Layout {
  readonly name: string;
  readonly dir: string;
  readonly files: Readonly<Record<string, string>>;
}

const deployment = (name: string, image = 'nginx:1.25', replicas = 1): string => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
  labels: {app: ${name}}
spec:
  replicas: ${replicas}
  selector:
    matchLabels: {app: ${name}}
  template:
    metadata:
      labels: {app: ${name}}
    spec:
      containers:
      - name: main
        image: ${image}
        env:
        - name: MODE
          value: base
`;
const service = (name: string): string => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
spec:
  selector: {app: ${name}}
  ports:
  - port: 80
    targetPort: 8080
`;
const configMap = (name: string): string => `apiVersion: v1
kind: ConfigMap
metadata:
  name: ${name}
data:
  key: value
`;
const base = {
  'base/kustomization.yaml': 'resources:\n- deployment.yaml\n- service.yaml\n',
  'base/deployment.yaml': deployment('web'),
  'base/service.yaml': service('web'),
};
const k = (lines: string[]): string => `${lines.join('\n')}\n`;

export const layouts: readonly Layout[] = [
  {
    name: 'namePrefix and nameSuffix (service selector and references follow)',
    dir: 'overlay',
    files: {
      ...base,
      'overlay/kustomization.yaml': k(['resources: [../base]', 'namePrefix: pre-', 'nameSuffix: -suf']),
    },
  },
  {
    name: 'namespace',
    dir: 'overlay',
    files: {
      ...base,
      'overlay/ns.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n',
      'overlay/kustomization.yaml': k(['resources: [../base, ns.yaml]', 'namespace: team-a']),
    },
  },
  {
    name: 'labels and commonLabels',
    dir: 'overlay',
    files: {
      ...base,
      'overlay/kustomization.yaml': k([
        'resources: [../base]',
        'commonLabels: {tier: frontend}',
        'labels:',
        '- pairs: {owner: team-a}',
        '  includeSelectors: false',
        '  includeTemplates: true',
      ]),
    },
  },
  {
    name: 'commonAnnotations',
    dir: 'overlay',
    files: {
      ...base,
      'overlay/kustomization.yaml': k(['resources: [../base]', 'commonAnnotations: {note: "hello, world"}']),
    },
  },
  {
    name: 'strategic-merge patch from a file (patchesStrategicMerge and patches.path)',
    dir: 'overlay',
    files: {
      ...base,
      'overlay/replicas.yaml':
        'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n',
      'overlay/env.yaml':
        'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: main\n        env:\n        - name: MODE\n          value: prod\n',
      'overlay/kustomization.yaml': k([
        'resources: [../base]',
        'patchesStrategicMerge: [replicas.yaml]',
        'patches:',
        '- path: env.yaml',
      ]),
    },
  },
  {
    name: 'strategic-merge patch inline',
    dir: 'overlay',
    files: {
      ...base,
      'overlay/kustomization.yaml': k([
        'resources: [../base]',
        'patches:',
        '- patch: |-',
        '    apiVersion: v1',
        '    kind: Service',
        '    metadata:',
        '      name: web',
        '    spec:',
        '      type: NodePort',
      ]),
    },
  },
  {
    name: 'JSON 6902 patch from a file',
    dir: 'overlay',
    files: {
      ...base,
      'overlay/ops.yaml':
        '- op: replace\n  path: /spec/replicas\n  value: 5\n- op: add\n  path: /metadata/annotations\n  value: {patched: "yes"}\n',
      'overlay/kustomization.yaml': k([
        'resources: [../base]',
        'patchesJson6902:',
        '- target: {group: apps, version: v1, kind: Deployment, name: web}',
        '  path: ops.yaml',
      ]),
    },
  },
  {
    name: 'JSON 6902 patch inline with a label-selector target',
    dir: 'overlay',
    files: {
      ...base,
      'base/other.yaml': deployment('api'),
      'base/kustomization.yaml': 'resources:\n- deployment.yaml\n- service.yaml\n- other.yaml\n',
      'overlay/kustomization.yaml': k([
        'resources: [../base]',
        'patches:',
        '- target: {kind: Deployment, labelSelector: "app=api"}',
        '  patch: |-',
        '    - op: replace',
        '      path: /spec/template/spec/containers/0/image',
        '      value: api:2',
      ]),
    },
  },
  {
    name: 'patch with a name-regex target over several objects',
    dir: 'overlay',
    files: {
      ...base,
      'base/other.yaml': deployment('web-worker'),
      'base/kustomization.yaml': 'resources:\n- deployment.yaml\n- service.yaml\n- other.yaml\n',
      'overlay/kustomization.yaml': k([
        'resources: [../base]',
        'patches:',
        '- target: {kind: Deployment, name: "web.*"}',
        '  patch: |-',
        '    apiVersion: apps/v1',
        '    kind: Deployment',
        '    metadata:',
        '      name: any',
        '      annotations: {rolled: "true"}',
      ]),
    },
  },
  {
    name: 'configMapGenerator with files, envs and literals (hash suffix, references rewritten)',
    dir: 'overlay',
    files: {
      ...base,
      'base/deployment.yaml': `${deployment('web')}        envFrom:\n        - configMapRef: {name: settings}\n`,
      'overlay/app.properties': 'color=blue\nsize=large\n',
      'overlay/.env': 'A=1\nB=two\n',
      'overlay/kustomization.yaml': k([
        'resources: [../base]',
        'namePrefix: p-',
        'configMapGenerator:',
        '- name: settings',
        '  files: [app.properties, renamed.txt=app.properties]',
        '  envs: [.env]',
        '  literals: [EXTRA=yes]',
      ]),
    },
  },
  {
    name: 'secretGenerator with and without a hash suffix',
    dir: 'overlay',
    files: {
      ...base,
      'overlay/password.txt': 's3cr3t',
      'overlay/kustomization.yaml': k([
        'resources: [../base]',
        'secretGenerator:',
        '- name: hashed',
        '  files: [password.txt]',
        '- name: plain',
        '  literals: [user=admin]',
        '  type: Opaque',
        '  options: {disableNameSuffixHash: true, labels: {kind: plain}}',
        'generatorOptions:',
        '  annotations: {generated: "true"}',
      ]),
    },
  },
  {
    name: 'images: newName, newTag and digest',
    dir: 'overlay',
    files: {
      ...base,
      'base/other.yaml': deployment('api', 'registry.example.com/api:1.0'),
      'base/kustomization.yaml': 'resources:\n- deployment.yaml\n- service.yaml\n- other.yaml\n',
      'overlay/kustomization.yaml': k([
        'resources: [../base]',
        'images:',
        '- name: nginx',
        '  newName: mirror.example.com/nginx',
        '  newTag: "1.27"',
        '- name: registry.example.com/api',
        '  digest: sha256:0000000000000000000000000000000000000000000000000000000000000000',
      ]),
    },
  },
  {
    name: 'replicas',
    dir: 'overlay',
    files: {
      ...base,
      'overlay/kustomization.yaml': k(['resources: [../base]', 'replicas:', '- name: web', '  count: 7']),
    },
  },
  {
    name: 'components',
    dir: 'overlay',
    files: {
      ...base,
      'components/monitoring/kustomization.yaml': k([
        'apiVersion: kustomize.config.k8s.io/v1alpha1',
        'kind: Component',
        'resources: [monitor.yaml]',
        'commonAnnotations: {monitored: "true"}',
      ]),
      'components/monitoring/monitor.yaml': configMap('monitor-config'),
      'overlay/kustomization.yaml': k(['resources: [../base]', 'components: [../components/monitoring]']),
    },
  },
  {
    name: 'nested overlays three levels deep',
    dir: 'overlays/prod-eu-1',
    files: {
      ...base,
      'overlays/prod/kustomization.yaml': k([
        'resources: [../../base]',
        'namePrefix: prod-',
        'commonLabels: {env: prod}',
      ]),
      'overlays/prod-eu/kustomization.yaml': k(['resources: [../prod]', 'nameSuffix: -eu', 'namespace: eu']),
      'overlays/prod-eu-1/kustomization.yaml': k([
        'resources: [../prod-eu]',
        'commonAnnotations: {zone: eu-1}',
        'replicas:',
        '- name: prod-web-eu',
        '  count: 4',
      ]),
    },
  },
  {
    name: 'a CRD with its custom objects (crds field and resources)',
    dir: 'app',
    files: {
      'app/crd.yaml': `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`,
      'app/widget.yaml':
        'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  configRef: cfg\n',
      'app/cfg.yaml': configMap('cfg'),
      'app/widget-config.json': `{"definitions": {"v1.Widget": {"properties": {"spec": {"properties": {"configRef": {"x-kubernetes-object-ref-api-version": "v1", "x-kubernetes-object-ref-kind": "ConfigMap", "type": "string"}}}}, "x-kubernetes-group-version-kind": [{"group": "example.com", "kind": "Widget", "version": "v1"}]}}}\n`,
      'app/kustomization.yaml': k([
        'resources: [crd.yaml, widget.yaml, cfg.yaml]',
        'crds: [widget-config.json]',
        'namePrefix: x-',
      ]),
    },
  },
  {
    name: 'vars',
    dir: 'overlay',
    files: {
      ...base,
      'overlay/pod.yaml':
        'apiVersion: v1\nkind: Pod\nmetadata:\n  name: probe\nspec:\n  containers:\n  - name: c\n    image: busybox\n    args: ["wget", "$(WEB_SERVICE)"]\n',
      'overlay/kustomization.yaml': k([
        'resources: [../base, pod.yaml]',
        'namePrefix: v-',
        'vars:',
        '- name: WEB_SERVICE',
        '  objref: {kind: Service, name: web, apiVersion: v1}',
        '  fieldref: {fieldpath: metadata.name}',
      ]),
    },
  },
  {
    name: 'replacements (inline and from a file)',
    dir: 'overlay',
    files: {
      ...base,
      'overlay/source.yaml': configMap('source'),
      'overlay/replacement.yaml': k([
        'source: {kind: ConfigMap, name: source, fieldPath: data.key}',
        'targets:',
        '- select: {kind: Deployment, name: web}',
        '  fieldPaths:',
        '  - spec.template.spec.containers.[name=main].env.[name=MODE].value',
      ]),
      'overlay/kustomization.yaml': k([
        'resources: [../base, source.yaml]',
        'replacements:',
        '- path: replacement.yaml',
        '- source: {kind: Service, name: web, fieldPath: metadata.name}',
        '  targets:',
        '  - select: {kind: Deployment}',
        '    fieldPaths: [metadata.annotations.service]',
        '    options: {create: true}',
      ]),
    },
  },
  {
    name: 'sortOptions (fifo) at the repository root',
    dir: '',
    files: {
      'z.yaml': configMap('z'),
      'a.yaml': service('a'),
      'kustomization.yaml': k(['resources: [z.yaml, a.yaml]', 'sortOptions: {order: fifo}']),
    },
  },
];
