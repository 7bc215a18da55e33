/**
 * The prepare pipeline: fetch the template's layers through the verified cache,
 * merge them into the instance directory with variable substitution (built in
 * a staging directory and swapped in: a failure leaves the directory as it
 * was), and build the runtime spec with the command and environment
 * substituted (argv tokenized first: a value never adds an argument).
 */
import {
  OrchestratorError,
  type PreparePayload,
  type RuntimeInstanceSpec,
  TemplateInvalidError,
} from "@orchestrator/core";
import type { CachedLayer, TemplateCache } from "@orchestrator/core/cache";
import { mergeLayers } from "@orchestrator/core/templates";
import {
  builtInVariables,
  ResolvedVariables,
  substituteArgv,
  substituteEnv,
} from "@orchestrator/core/variables";

export interface PrepareContext {
  nodeId: string;
  instanceId: string;
  epoch: number;
  /** The instance directory. */
  directory: string;
  payload: PreparePayload;
  cache: TemplateCache;
  signal?: AbortSignal;
}

export interface PreparedInstance {
  spec: RuntimeInstanceSpec;
  /** Non-fatal problems to report (a stale cached layer was used, ...). */
  warnings: string[];
}

/** Labels that find an agent's instances again after a restart. */
export const LABELS = {
  instance: "orchestrator.instance",
  node: "orchestrator.node",
  epoch: "orchestrator.epoch",
  template: "orchestrator.template",
} as const;

export async function prepareInstance(context: PrepareContext): Promise<PreparedInstance> {
  const { payload } = context;
  const { definition } = payload.template;
  const runtimeDefinition = definition.runtime[payload.runtime as keyof typeof definition.runtime];
  if (!runtimeDefinition) {
    throw new TemplateInvalidError(`template ${definition.name} has no ${payload.runtime} runtime`);
  }
  const secretNames = Object.entries(definition.variables)
    .filter(([, variable]) => variable.secret)
    .map(([name]) => name);
  const builtIns = builtInVariables({
    instanceId: context.instanceId,
    instanceName: payload.instanceName,
    nodeId: context.nodeId,
    ports: definition.ports.map((port) => ({
      name: port.name,
      port: payload.ports[port.name] ?? 0,
    })),
    memoryMb: payload.resources.memoryMb,
    cpu: payload.resources.cpu,
  });
  const variables = new ResolvedVariables(
    [...Object.entries(payload.variables), ...builtIns],
    secretNames,
  );

  const warnings: string[] = [];
  const layers: CachedLayer[] = [];
  try {
    for (const layer of definition.layers) {
      const cached = await context.cache.acquire(
        layer,
        context.signal ? { signal: context.signal } : {},
      );
      layers.push(cached);
      if (cached.stale)
        warnings.push(`template storage unreachable: used the cached copy of layer ${layer}`);
    }
    await mergeLayers({
      layers: layers.map((layer) => ({ name: layer.layer, dir: layer.dir })),
      target: context.directory,
      ...(definition.files ? { files: definition.files } : {}),
      variables,
      strict: true,
      allowSharedFiles: true,
      ...(context.signal ? { signal: context.signal } : {}),
    });
  } finally {
    for (const layer of layers) layer.release();
  }

  const command = substituteArgv(
    "command" in runtimeDefinition && runtimeDefinition.command ? runtimeDefinition.command : [],
    variables,
  );
  const env = substituteEnv(definition.env ?? {}, variables);
  const spec: RuntimeInstanceSpec = {
    instanceId: context.instanceId,
    command,
    env,
    workingDirectory: context.directory,
    ...("image" in runtimeDefinition ? { image: runtimeDefinition.image } : {}),
    ports: definition.ports.map((port) => {
      const hostPort = payload.ports[port.name];
      if (hostPort === undefined) {
        throw new OrchestratorError(
          "VALIDATION_FAILED",
          `no host port was assigned to '${port.name}'`,
        );
      }
      // The same number inside and outside, so ${PORT} means one thing everywhere.
      return { name: port.name, protocol: port.protocol, hostPort, containerPort: hostPort };
    }),
    resources: payload.resources,
    labels: {
      [LABELS.instance]: context.instanceId,
      [LABELS.node]: context.nodeId,
      [LABELS.epoch]: String(context.epoch),
      [LABELS.template]: `${definition.name}@${payload.template.version}`,
    },
    stop: definition.stop,
  };
  return { spec, warnings };
}
