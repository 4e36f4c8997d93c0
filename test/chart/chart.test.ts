import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as gatewayV1 from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1';
import * as appsV1 from 'kubernetes-models/apps/v1';
import * as autoscalingV2 from 'kubernetes-models/autoscaling/v2';
import * as policyV1 from 'kubernetes-models/policy/v1';
import * as networkingV1 from 'kubernetes-models/networking.k8s.io/v1';
import * as coreV1 from 'kubernetes-models/v1';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config.js';

const run = promisify(execFile);
const repo = new URL('../../', import.meta.url).pathname;
const chart = join(repo, 'chart');
let helm: string;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  [key: string]: unknown;
}

/** Model classes that validate an object against the Kubernetes and Gateway API OpenAPI schemas. */
const MODELS: Record<string, { new (data: never): { validate(): void } }> = {
  'v1/ConfigMap': coreV1.ConfigMap,
  'v1/Secret': coreV1.Secret,
  'v1/Service': coreV1.Service,
  'v1/ServiceAccount': coreV1.ServiceAccount,
  'v1/PersistentVolumeClaim': coreV1.PersistentVolumeClaim,
  'apps/v1/Deployment': appsV1.Deployment,
  'networking.k8s.io/v1/Ingress': networkingV1.Ingress,
  'gateway.networking.k8s.io/v1/HTTPRoute': gatewayV1.HTTPRoute,
  'policy/v1/PodDisruptionBudget': policyV1.PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': autoscalingV2.HorizontalPodAutoscaler,
  'monitoring.coreos.com/v1/ServiceMonitor': class {
    // No published model for the Prometheus Operator's CRD here: the fields it requires, checked by hand.
    constructor(private readonly object: { spec?: { selector?: { matchLabels?: object }; endpoints?: { port?: string; path?: string }[] } }) {}
    validate(): void {
      const spec = this.object.spec;
      if (!spec?.selector?.matchLabels || !spec.endpoints?.length || spec.endpoints.some((e) => !e.port || !e.path)) throw new Error('ServiceMonitor needs spec.selector.matchLabels and endpoints with port and path');
    }
  },
};

async function template(...sets: string[]): Promise<K8sObject[]> {
  const args = ['template', 'rs', chart, '--namespace', 'spec-kit', ...sets.flatMap((s) => ['--set', s])];
  const { stdout } = await run(helm, args);
  const objects = parseAllDocuments(stdout).map((d) => d.toJS() as K8sObject).filter(Boolean);
  for (const object of objects) {
    const Model = MODELS[`${object.apiVersion}/${object.kind}`];
    expect(Model, `a schema for ${object.apiVersion} ${object.kind}`).toBeDefined();
    // Throws, naming the field, when the object breaks its schema.
    new Model!(object as never).validate();
    expect(object.metadata.namespace).toBe('spec-kit');
  }
  return objects;
}

const find = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const deploymentOf = (objects: K8sObject[]): any => find(objects, 'Deployment')[0];

beforeAll(async () => {
  helm = (await run(join(repo, 'scripts/fetch-helm.sh'))).stdout.trim();
}, 180_000);

describe('helm chart', () => {
  it('passes helm lint --strict with default values and with every toggle', async () => {
    for (const sets of [[], ['ingress.enabled=true'], ['httpRoute.enabled=true'], ['persistence.enabled=false'], ['app.existingSecret=mine']]) {
      const { stdout } = await run(helm, ['lint', '--strict', chart, ...sets.flatMap((s) => ['--set', s])]);
      expect(stdout).toContain('0 chart(s) failed');
    }
  });

  it('has appVersion equal to the package version', async () => {
    const chartYaml = parseYaml(await readFile(join(chart, 'Chart.yaml'), 'utf8'));
    const pkg = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8'));
    expect(chartYaml.appVersion).toBe(pkg.version);
  });

  it('renders valid, hardened defaults', async () => {
    const objects = await template();
    expect(objects.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'PersistentVolumeClaim', 'Secret', 'Service', 'ServiceAccount']);
    const deployment = deploymentOf(objects);
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    expect(container.image).toBe('ghcr.io/release-server/release-server:0.1.0');
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(deployment.spec.strategy.type).toBe('Recreate');
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    expect(container.readinessProbe).toMatchObject({ httpGet: { path: '/readyz' }, periodSeconds: 5 });
    // The token comes from the Secret, mounted as a file; no env value carries it.
    expect(container.env).toContainEqual({ name: 'AUTH_TOKEN_FILE', value: '/etc/release-server/secret/token' });
    expect(JSON.stringify(container.env)).not.toMatch(/"AUTH_TOKEN"/);
    const mounts = Object.fromEntries(container.volumeMounts.map((m: { name: string; mountPath: string }) => [m.name, m.mountPath]));
    expect(mounts).toMatchObject({ data: '/data', tmp: '/tmp', token: '/etc/release-server/secret', config: '/etc/release-server/config.yaml' });
    expect(pod.volumes.find((v: { name: string }) => v.name === 'data').persistentVolumeClaim.claimName).toBe('rs-release-server');
    expect(deployment.spec.template.metadata.annotations['checksum/config']).toMatch(/^[0-9a-f]{64}$/);
    expect(deployment.spec.template.metadata.annotations['checksum/secret']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('renders a config.yaml that the server itself accepts, and a change of it rolls the pod', async () => {
    const objects = await template('app.publicUrl=https://releases.example.com', 'app.maxPackages=25', 'app.maxReleases=3', 'app.maxUploadBytes=1GiB');
    const configYaml = (find(objects, 'ConfigMap')[0] as unknown as { data: Record<string, string> }).data['config.yaml']!;
    const path = join(await mkdtemp(join(tmpdir(), 'rs-chart-')), 'config.yaml');
    await writeFile(path, configYaml);
    const config = loadConfig({ CONFIG_PATH: path });
    expect(config).toMatchObject({ port: 8000, storagePath: '/data', maxPackages: 25, maxReleases: 3, maxUploadBytes: 1024 ** 3, publicUrl: 'https://releases.example.com' });
    const before = deploymentOf(await template()).spec.template.metadata.annotations['checksum/config'];
    expect(deploymentOf(objects).spec.template.metadata.annotations['checksum/config']).not.toBe(before);
    const secretBefore = deploymentOf(await template('app.authToken=one-token-1234567')).spec.template.metadata.annotations['checksum/secret'];
    const secretAfter = deploymentOf(await template('app.authToken=another-token-89')).spec.template.metadata.annotations['checksum/secret'];
    expect(secretAfter).not.toBe(secretBefore);
  });

  it('renders sources and approve_uploads into a config.yaml the server accepts, credentials by reference only', async () => {
    const objects = await template(
      'app.approveUploads=false',
      'app.sources[0].name=community',
      'app.sources[0].catalogs.extension=https://raw.githubusercontent.com/github/spec-kit/main/extensions/catalog.community.json',
      'app.sources[0].headers.Authorization.env=GH_CATALOG_TOKEN',
      'app.sources[0].deny[0]=evil-*',
      'app.sources[0].sync_interval=6h',
      'app.extraEnv[0].name=GH_CATALOG_TOKEN',
      'app.extraEnv[0].valueFrom.secretKeyRef.name=catalog-token',
      'app.extraEnv[0].valueFrom.secretKeyRef.key=token',
    );
    expect(deploymentOf(objects).spec.template.spec.containers[0].env).toContainEqual({ name: 'GH_CATALOG_TOKEN', valueFrom: { secretKeyRef: { name: 'catalog-token', key: 'token' } } });
    const configYaml = (find(objects, 'ConfigMap')[0] as unknown as { data: Record<string, string> }).data['config.yaml']!;
    const path = join(await mkdtemp(join(tmpdir(), 'rs-chart-')), 'config.yaml');
    await writeFile(path, configYaml);
    const config = loadConfig({ CONFIG_PATH: path, GH_CATALOG_TOKEN: 'from-a-secret' });
    expect(config.approveUploads).toBe(false);
    expect(config.sources).toMatchObject([{ name: 'community', deny: ['evil-*'], syncIntervalSeconds: 21_600, headers: { Authorization: { env: 'GH_CATALOG_TOKEN' } } }]);
  });

  it('stores a given token in the Secret it creates', async () => {
    const secret = find(await template('app.authToken=given-token-0123456789'), 'Secret')[0] as unknown as { data: { token: string } };
    expect(Buffer.from(secret.data.token, 'base64').toString()).toBe('given-token-0123456789');
  });

  it('renders an Ingress when asked', async () => {
    const objects = await template('ingress.enabled=true', 'ingress.className=nginx', 'ingress.tls[0].secretName=releases-tls', 'ingress.tls[0].hosts[0]=releases.example.com');
    const [ingress] = find(objects, 'Ingress') as unknown as { spec: { ingressClassName: string; rules: { host: string; http: { paths: { backend: { service: { name: string } } }[] } }[]; tls: unknown[] } }[];
    expect(ingress!.spec.ingressClassName).toBe('nginx');
    expect(ingress!.spec.rules[0]!.host).toBe('releases.example.com');
    expect(ingress!.spec.rules[0]!.http.paths[0]!.backend.service.name).toBe('rs-release-server');
    expect(ingress!.spec.tls).toHaveLength(1);
    expect(find(objects, 'HTTPRoute')).toEqual([]);
  });

  it('sets public_url from the Ingress or HTTPRoute host when none is given, so forwarded headers never decide URLs', async () => {
    const configOf = async (...sets: string[]) => {
      const configYaml = (find(await template(...sets), 'ConfigMap')[0] as unknown as { data: Record<string, string> }).data['config.yaml']!;
      const path = join(await mkdtemp(join(tmpdir(), 'rs-chart-')), 'config.yaml');
      await writeFile(path, configYaml);
      return loadConfig({ CONFIG_PATH: path });
    };
    expect((await configOf()).publicUrl).toBeNull();
    expect((await configOf()).trustProxy).toBe('loopback, linklocal, uniquelocal');
    expect((await configOf('ingress.enabled=true', 'ingress.hosts[0].host=r.example.com')).publicUrl).toBe('http://r.example.com');
    expect((await configOf('ingress.enabled=true', 'ingress.hosts[0].host=r.example.com', 'ingress.tls[0].secretName=t', 'ingress.tls[0].hosts[0]=r.example.com')).publicUrl).toBe('https://r.example.com');
    expect((await configOf('httpRoute.enabled=true', 'httpRoute.hostnames[0]=g.example.com')).publicUrl).toBe('https://g.example.com');
    expect((await configOf('ingress.enabled=true', 'app.publicUrl=https://given.example')).publicUrl).toBe('https://given.example');
  });

  it('renders a Gateway API HTTPRoute when asked', async () => {
    const objects = await template('httpRoute.enabled=true', 'httpRoute.parentRefs[0].name=public', 'httpRoute.hostnames[0]=r.example.com');
    const [route] = find(objects, 'HTTPRoute') as unknown as { spec: { parentRefs: { name: string }[]; hostnames: string[]; rules: { backendRefs: { name: string; port: number }[] }[] } }[];
    expect(route!.spec.parentRefs).toEqual([{ name: 'public' }]);
    expect(route!.spec.hostnames).toEqual(['r.example.com']);
    expect(route!.spec.rules[0]!.backendRefs[0]).toEqual({ name: 'rs-release-server', port: 80 });
    expect(find(objects, 'Ingress')).toEqual([]);
  });

  it('refuses Ingress and HTTPRoute together, saying why', async () => {
    await expect(template('ingress.enabled=true', 'httpRoute.enabled=true')).rejects.toThrow(/mutually exclusive/);
  });

  it('uses an existing Secret, and creates none', async () => {
    const objects = await template('app.existingSecret=corp-token', 'app.existingSecretKey=upload-token');
    expect(find(objects, 'Secret')).toEqual([]);
    const pod = deploymentOf(objects).spec.template.spec;
    expect(pod.volumes.find((v: { name: string }) => v.name === 'token').secret).toEqual({ secretName: 'corp-token', items: [{ key: 'upload-token', path: 'upload-token' }] });
    expect(pod.containers[0].env).toContainEqual({ name: 'AUTH_TOKEN_FILE', value: '/etc/release-server/secret/upload-token' });
  });

  it('uses an existing claim, and creates none', async () => {
    const objects = await template('persistence.existingClaim=packages');
    expect(find(objects, 'PersistentVolumeClaim')).toEqual([]);
    expect(deploymentOf(objects).spec.template.spec.volumes.find((v: { name: string }) => v.name === 'data').persistentVolumeClaim.claimName).toBe('packages');
  });

  it('runs on an emptyDir with persistence off, rolling updates allowed', async () => {
    const objects = await template('persistence.enabled=false');
    expect(find(objects, 'PersistentVolumeClaim')).toEqual([]);
    const deployment = deploymentOf(objects);
    expect(deployment.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'data').emptyDir).toEqual({});
    expect(deployment.spec.strategy.type).toBe('RollingUpdate');
  });

  it('refuses values outside values.schema.json', async () => {
    await expect(template('app.maxPackages=-1')).rejects.toThrow(/maxPackages/);
    await expect(template('service.type=Bogus')).rejects.toThrow(/service/);
    await expect(template('app.unknownKey=1')).rejects.toThrow(/unknownKey|additional/i);
  });
});

describe('the README', () => {
  it('has helm install commands that render valid objects exactly as written', async () => {
    const readme = await readFile(join(repo, 'README.md'), 'utf8');
    const commands = [...readme.matchAll(/```sh\n(helm install[\s\S]*?)```/g)].map((m) => m[1]!.replace(/\\\n\s*/g, ' ').trim());
    expect(commands.length).toBeGreaterThanOrEqual(2);
    for (const command of commands) {
      // `helm install NAME CHART …` renders what `helm template NAME CHART …` prints (no cluster here).
      const words = [...command.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!);
      expect(words.slice(0, 4)).toEqual(['helm', 'install', 'release-server', './chart']);
      const args = words.slice(4).filter((w) => w !== '--create-namespace');
      const { stdout } = await run(helm, ['template', 'release-server', chart, ...args]);
      const objects = parseAllDocuments(stdout).map((d) => d.toJS() as K8sObject).filter(Boolean);
      for (const object of objects) new MODELS[`${object.apiVersion}/${object.kind}`]!(object as never).validate();
      expect(objects.some((o) => o.kind === 'Ingress' || o.kind === 'HTTPRoute')).toBe(true);
      expect(objects.every((o) => o.metadata.namespace === 'spec-kit')).toBe(true);
    }
  });

  it('runs the container the way the image expects', async () => {
    const readme = await readFile(join(repo, 'README.md'), 'utf8');
    const dockerfile = await readFile(join(repo, 'Dockerfile'), 'utf8');
    const run = /docker run[\s\S]*?```/.exec(readme)![0].replace(/\\\n\s*/g, ' ');
    const port = /EXPOSE (\d+)/.exec(dockerfile)![1];
    expect(run).toContain(`-p ${port}:${port}`);
    expect(dockerfile).toContain('VOLUME ["/data"]');
    expect(run).toContain(':/data');
    expect(run).toContain('--read-only --tmpfs /tmp');
    const version = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')).version;
    expect(run).toContain(`ghcr.io/release-server/release-server:${version}`);
  });
});

describe('storage backends and replicas', () => {
  const s3 = ['storage.backend=s3', 'storage.s3.bucket=packages', 'storage.s3.prefix=release-server/', 'storage.s3.endpoint=http://rgw.storage:7480', 'storage.s3.forcePathStyle=true'];

  it('with s3: replicas, RollingUpdate, a PodDisruptionBudget, no volume or PVC, credentials from a Secret, and a config the server accepts', async () => {
    const objects = await template(...s3, 'replicaCount=3', 'storage.s3.existingSecret=s3-creds', 'storage.s3.downloadRedirect=true', 'app.workers=2');
    expect(objects.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Secret', 'Service', 'ServiceAccount']);
    const deployment = deploymentOf(objects);
    expect(deployment.spec.replicas).toBe(3);
    expect(deployment.spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
    const pod = deployment.spec.template.spec;
    expect(pod.volumes.map((v: { name: string }) => v.name)).not.toContain('data');
    const env = Object.fromEntries(pod.containers[0].env.map((e: { name: string; valueFrom?: unknown }) => [e.name, e.valueFrom]));
    expect(env.AWS_SECRET_ACCESS_KEY).toEqual({ secretKeyRef: { name: 's3-creds', key: 'AWS_SECRET_ACCESS_KEY' } });
    const pdb = find(objects, 'PodDisruptionBudget')[0] as unknown as { spec: { minAvailable: number; selector: { matchLabels: object } } };
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    const configYaml = (find(objects, 'ConfigMap')[0] as unknown as { data: Record<string, string> }).data['config.yaml']!;
    const path = join(await mkdtemp(join(tmpdir(), 'rs-chart-')), 'config.yaml');
    await writeFile(path, configYaml);
    expect(loadConfig({ CONFIG_PATH: path })).toMatchObject({
      storageBackend: 's3',
      s3: { bucket: 'packages', prefix: 'release-server/', endpoint: 'http://rgw.storage:7480', region: 'us-east-1', forcePathStyle: true },
      indexRefreshSeconds: 2,
      downloadRedirectSeconds: 900,
      workers: 2,
    });
  });

  it('with s3: an optional HorizontalPodAutoscaler (which then owns the replica count) and ServiceMonitor', async () => {
    const objects = await template(...s3, 'autoscaling.enabled=true', 'autoscaling.maxReplicas=6', 'serviceMonitor.enabled=true', 'serviceMonitor.labels.release=prom');
    const hpa = find(objects, 'HorizontalPodAutoscaler')[0] as unknown as { spec: { maxReplicas: number; scaleTargetRef: { name: string } } };
    expect(hpa.spec).toMatchObject({ maxReplicas: 6, scaleTargetRef: { name: 'rs-release-server' } });
    expect(deploymentOf(objects).spec.replicas).toBeUndefined();
    const monitor = find(objects, 'ServiceMonitor')[0] as unknown as { metadata: { labels: Record<string, string> }; spec: { endpoints: { path: string }[] } };
    expect(monitor.spec.endpoints[0]!.path).toBe('/metrics');
    expect(monitor.metadata.labels.release).toBe('prom');
    const { stdout } = await run(helm, ['lint', '--strict', chart, ...[...s3, 'replicaCount=2', 'serviceMonitor.enabled=true'].flatMap((x) => ['--set', x])]);
    expect(stdout).toContain('0 chart(s) failed');
  });

  it('refuses several replicas or autoscaling on the filesystem backend, and s3 without a bucket; several workers in the one pod are fine', async () => {
    await expect(template('replicaCount=2')).rejects.toThrow(/replicaCount/);
    await expect(template('autoscaling.enabled=true')).rejects.toThrow(/autoscaling/);
    // The server takes the chart's config with two workers over the filesystem volume.
    const workers = (find(await template('app.workers=2'), 'ConfigMap')[0] as unknown as { data: Record<string, string> }).data['config.yaml']!;
    const path = join(await mkdtemp(join(tmpdir(), 'rs-chart-')), 'config.yaml');
    await writeFile(path, workers);
    expect(loadConfig({ CONFIG_PATH: path })).toMatchObject({ storageBackend: 'filesystem', workers: 2 });
    await expect(template('storage.backend=s3')).rejects.toThrow(/bucket/);
    const single = await template();
    expect(deploymentOf(single).spec.replicas).toBe(1);
    expect(find(single, 'PodDisruptionBudget')).toEqual([]);
  });
});

describe('tokens and private servers', () => {
  const hash = 'a'.repeat(64);

  it('renders app.tokens into a Secret mounted as the tokens file, and a config the server accepts', async () => {
    const objects = await template('app.readAccess=token', 'app.tokens[0].name=ci-main', 'app.tokens[0].scopes[0]=write', `app.tokens[0].sha256=${hash}`);
    const secret = find(objects, 'Secret').find((s) => s.metadata.name === 'rs-release-server-tokens') as unknown as { stringData: Record<string, string> };
    expect(parseYaml(secret.stringData['tokens.yaml']!)).toEqual([{ name: 'ci-main', scopes: ['write'], sha256: hash }]);
    const configYaml = (find(objects, 'ConfigMap')[0] as unknown as { data: Record<string, string> }).data['config.yaml']!;
    const path = join(await mkdtemp(join(tmpdir(), 'rs-chart-')), 'config.yaml');
    await writeFile(path, configYaml);
    expect(loadConfig({ CONFIG_PATH: path })).toMatchObject({ readAccess: 'token', tokensFile: '/etc/release-server/tokens/tokens.yaml', authFailuresPerMinute: 10 });
    const pod = deploymentOf(objects).spec.template.spec;
    // a directory mount: a subPath mount would never see the Secret change
    expect(pod.containers[0].volumeMounts.find((m: { name: string }) => m.name === 'tokens')).toEqual({ name: 'tokens', mountPath: '/etc/release-server/tokens', readOnly: true });
    expect(pod.volumes.find((v: { name: string }) => v.name === 'tokens').secret.secretName).toBe('rs-release-server-tokens');
  });

  it('uses an existing tokens Secret, and refuses a malformed token entry', async () => {
    const objects = await template('app.tokensExistingSecret=corp-tokens');
    expect(find(objects, 'Secret').map((s) => s.metadata.name)).toEqual(['rs-release-server']);
    expect(deploymentOf(objects).spec.template.spec.volumes.find((v: { name: string }) => v.name === 'tokens').secret.secretName).toBe('corp-tokens');
    await expect(template('app.tokens[0].name=ci', 'app.tokens[0].scopes[0]=admin', `app.tokens[0].sha256=${hash}`)).rejects.toThrow(/scopes/);
    await expect(template('app.readAccess=private')).rejects.toThrow(/readAccess/);
  });
});
