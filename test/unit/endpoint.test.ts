/**
 * The Docker endpoint resolution order of the docker CLI, on a file map (no real files): --host >
 * docker.host > DOCKER_HOST > docker context (DOCKER_CONTEXT, then currentContext) > default socket.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  DockerEndpointError,
  contextMetaPath,
  describeEndpoint,
  endpointHint,
  parseDockerHost,
  resolveDockerEndpoint,
  type EndpointInputs,
} from '../../src/docker/endpoint.js';

const HOME = '/home/u';

function inputs(overrides: Partial<EndpointInputs> = {}, files: Record<string, string> = {}): EndpointInputs {
  return { env: {}, homeDir: HOME, readFile: (file) => files[file] ?? null, ...overrides };
}

/** A context as `docker context create NAME --docker host=HOST` stores it. */
function contextFiles(name: string, host: string, configDir = `${HOME}/.docker`): Record<string, string> {
  const digest = createHash('sha256').update(name).digest('hex');
  return {
    [`${configDir}/contexts/meta/${digest}/meta.json`]: JSON.stringify({
      Name: name,
      Metadata: {},
      Endpoints: { docker: { Host: host, SkipTLSVerify: false } },
    }),
  };
}

describe('resolveDockerEndpoint', () => {
  it('defaults to /var/run/docker.sock', () => {
    const endpoint = resolveDockerEndpoint(inputs());
    expect(endpoint).toEqual({
      kind: 'unix',
      socketPath: '/var/run/docker.sock',
      source: { kind: 'default' },
    });
    expect(describeEndpoint(endpoint)).toBe('unix:///var/run/docker.sock (the default socket)');
  });

  it('honours DOCKER_HOST unix:// and tcp://, and names it as the source', () => {
    const unix = resolveDockerEndpoint(inputs({ env: { DOCKER_HOST: 'unix:///run/x/docker.sock' } }));
    expect(unix).toMatchObject({ kind: 'unix', socketPath: '/run/x/docker.sock', source: { kind: 'env' } });
    expect(describeEndpoint(unix)).toBe('unix:///run/x/docker.sock (from DOCKER_HOST)');
    expect(endpointHint(unix)).toMatch(/DOCKER_HOST/);
    const tcp = resolveDockerEndpoint(inputs({ env: { DOCKER_HOST: 'tcp://127.0.0.1:2375' } }));
    expect(tcp).toEqual({
      kind: 'tcp',
      hostname: '127.0.0.1',
      port: 2375,
      tls: null,
      source: { kind: 'env' },
    });
    // no port: 2375 plain, 2376 with TLS (docker CLI defaults)
    expect(resolveDockerEndpoint(inputs({ env: { DOCKER_HOST: 'tcp://docker.example' } }))).toMatchObject({
      port: 2375,
    });
  });

  it('reads DOCKER_TLS_VERIFY and DOCKER_CERT_PATH (default ~/.docker) for tcp://', () => {
    const verified = resolveDockerEndpoint(
      inputs({ env: { DOCKER_HOST: 'tcp://h', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/certs' } }),
    );
    expect(verified).toMatchObject({
      port: 2376,
      tls: { caPath: '/certs/ca.pem', certPath: '/certs/cert.pem', keyPath: '/certs/key.pem', verify: true },
    });
    expect(describeEndpoint(verified)).toBe('tcp://h:2376 with TLS (from DOCKER_HOST)');
    const encryptedOnly = resolveDockerEndpoint(
      inputs({ env: { DOCKER_HOST: 'tcp://h:9', DOCKER_TLS: '1' } }),
    );
    expect(encryptedOnly).toMatchObject({
      port: 9,
      tls: { caPath: `${HOME}/.docker/ca.pem`, verify: false },
    });
    // DOCKER_TLS_VERIFY= (empty) is off, as in the docker CLI
    expect(
      resolveDockerEndpoint(inputs({ env: { DOCKER_HOST: 'tcp://h', DOCKER_TLS_VERIFY: '' } })),
    ).toMatchObject({
      tls: null,
    });
  });

  it('ranks --host over docker.host over a non-default docker.socketPath over DOCKER_HOST', () => {
    const env = { DOCKER_HOST: 'tcp://127.0.0.1:1' };
    expect(
      resolveDockerEndpoint(
        inputs({ env, flagHost: 'unix:///flag.sock', configHost: 'unix:///config.sock' }),
      ),
    ).toMatchObject({ socketPath: '/flag.sock', source: { kind: 'flag' } });
    expect(resolveDockerEndpoint(inputs({ env, configHost: 'unix:///config.sock' }))).toMatchObject({
      socketPath: '/config.sock',
      source: { kind: 'config', key: 'docker.host' },
    });
    expect(resolveDockerEndpoint(inputs({ env, configSocketPath: '/srv/docker.sock' }))).toMatchObject({
      socketPath: '/srv/docker.sock',
      source: { kind: 'config', key: 'docker.socketPath' },
    });
    // the default socketPath (the schema's default) does not hide DOCKER_HOST
    expect(resolveDockerEndpoint(inputs({ env, configSocketPath: '/var/run/docker.sock' }))).toMatchObject({
      kind: 'tcp',
      source: { kind: 'env' },
    });
  });

  it('uses the current docker context from config.json, DOCKER_CONTEXT over it, DOCKER_HOST over both', () => {
    const files = {
      ...contextFiles('rootless', 'unix:///run/user/1000/docker.sock'),
      ...contextFiles('remote', 'tcp://10.0.0.5:2375'),
      [`${HOME}/.docker/config.json`]: JSON.stringify({ currentContext: 'rootless' }),
    };
    const current = resolveDockerEndpoint(inputs({}, files));
    expect(current).toMatchObject({
      socketPath: '/run/user/1000/docker.sock',
      source: { kind: 'context', name: 'rootless', via: 'config.json' },
    });
    expect(describeEndpoint(current)).toBe(
      'unix:///run/user/1000/docker.sock (from docker context "rootless" (currentContext in config.json))',
    );
    expect(resolveDockerEndpoint(inputs({ env: { DOCKER_CONTEXT: 'remote' } }, files))).toMatchObject({
      hostname: '10.0.0.5',
      source: { kind: 'context', name: 'remote', via: 'DOCKER_CONTEXT' },
    });
    // DOCKER_CONTEXT=default means "no context": the default socket
    expect(resolveDockerEndpoint(inputs({ env: { DOCKER_CONTEXT: 'default' } }, files))).toMatchObject({
      source: { kind: 'default' },
    });
    expect(
      resolveDockerEndpoint(
        inputs({ env: { DOCKER_HOST: 'unix:///e.sock', DOCKER_CONTEXT: 'remote' } }, files),
      ),
    ).toMatchObject({ socketPath: '/e.sock', source: { kind: 'env' } });
  });

  it('finds contexts under $DOCKER_CONFIG and names the meta directory by the sha256 of the name', () => {
    const files = {
      ...contextFiles('ci', 'unix:///ci.sock', '/etc/dc'),
      '/etc/dc/config.json': '{"currentContext":"ci","auths":{}}',
    };
    expect(resolveDockerEndpoint(inputs({ env: { DOCKER_CONFIG: '/etc/dc' } }, files))).toMatchObject({
      socketPath: '/ci.sock',
    });
    expect(contextMetaPath('/etc/dc', 'ci')).toBe(
      `/etc/dc/contexts/meta/${createHash('sha256').update('ci').digest('hex')}/meta.json`,
    );
  });

  it("uses a context's stored TLS files", () => {
    const digest = createHash('sha256').update('tls').digest('hex');
    const tlsDir = `${HOME}/.docker/contexts/tls/${digest}/docker`;
    const files = {
      ...contextFiles('tls', 'tcp://h:2376'),
      [`${tlsDir}/ca.pem`]: 'CA',
      [`${tlsDir}/cert.pem`]: 'CERT',
      [`${tlsDir}/key.pem`]: 'KEY',
    };
    expect(resolveDockerEndpoint(inputs({ env: { DOCKER_CONTEXT: 'tls' } }, files))).toMatchObject({
      tls: { caPath: `${tlsDir}/ca.pem`, verify: true },
    });
  });

  it('fails plainly on a missing context, a broken config.json, ssh:// and addresses without a scheme', () => {
    expect(() => resolveDockerEndpoint(inputs({ env: { DOCKER_CONTEXT: 'gone' } }))).toThrow(
      /docker context "gone".*does not exist/,
    );
    expect(() => resolveDockerEndpoint(inputs({}, { [`${HOME}/.docker/config.json`]: '{nope' }))).toThrow(
      /config.json is not valid JSON/,
    );
    expect(() => resolveDockerEndpoint(inputs({ env: { DOCKER_HOST: 'ssh://me@h' } }))).toThrow(
      /ssh:\/\/ is not supported/,
    );
    expect(() => parseDockerHost('localhost:2375', { kind: 'flag' })).toThrow(DockerEndpointError);
    expect(() => parseDockerHost('unix://relative.sock', { kind: 'flag' })).toThrow(/absolute path/);
    expect(() => parseDockerHost('tcp://h:1/path', { kind: 'flag' })).toThrow(/no path/);
  });

  it('accepts a bare absolute path and IPv6 addresses', () => {
    expect(parseDockerHost('/run/d.sock', { kind: 'flag' })).toMatchObject({
      kind: 'unix',
      socketPath: '/run/d.sock',
    });
    const v6 = parseDockerHost('tcp://[::1]:2375', { kind: 'flag' });
    expect(v6).toMatchObject({ hostname: '::1', port: 2375 });
    expect(describeEndpoint(v6)).toBe('tcp://[::1]:2375 (from --host)');
  });
});
