/**
 * Request schemas of the Brain API (TypeBox → validation and OpenAPI). Every
 * body refuses unknown fields; server-owned fields (id, state, nodeId, owner,
 * timestamps) are not part of any body, so sending them is an error.
 * The static types are exported for the panel (`@orchestrator/brain-server/api`).
 */
import { INSTANCE_STATES, INSTANCE_TRIGGERS, MAX_CONSOLE_LINE_LENGTH } from "@orchestrator/core";
import { type Static, Type } from "typebox";

const strict = { additionalProperties: false } as const;

export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) }, strict);
export const NameParams = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 255, pattern: "^[a-z0-9][a-z0-9._/-]*$" }) },
  strict,
);

export const LoginBody = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 64 }),
    password: Type.String({ minLength: 1, maxLength: 1024 }),
  },
  strict,
);
export type LoginBody = Static<typeof LoginBody>;

export const Role = Type.Union([
  Type.Literal("admin"),
  Type.Literal("operator"),
  Type.Literal("viewer"),
]);

export const CreateUserBody = Type.Object(
  {
    username: Type.String({ minLength: 2, maxLength: 64 }),
    password: Type.String({ minLength: 1, maxLength: 1024 }),
    role: Role,
  },
  strict,
);
export type CreateUserBody = Static<typeof CreateUserBody>;

export const UpdateUserBody = Type.Object(
  {
    role: Type.Optional(Role),
    disabled: Type.Optional(Type.Boolean()),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
  },
  { ...strict, minProperties: 1 },
);
export type UpdateUserBody = Static<typeof UpdateUserBody>;

export const CreateTokenBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    scopes: Type.Optional(
      Type.Array(Type.String({ maxLength: 64 }), { maxItems: 32, uniqueItems: true }),
    ),
    expiresInDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
  },
  strict,
);
export type CreateTokenBody = Static<typeof CreateTokenBody>;

export const RegisterTemplateBody = Type.Union([
  Type.Object({ definition: Type.Object({}, { additionalProperties: true }) }, strict),
  Type.Object({ fromStorage: Type.String({ minLength: 1, maxLength: 255 }) }, strict),
]);
export type RegisterTemplateBody = Static<typeof RegisterTemplateBody>;

export const JoinTokenBody = Type.Object(
  { expiresInMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 24 * 60 })) },
  strict,
);

export const VariableValue = Type.Union([
  Type.String({ maxLength: 65536 }),
  Type.Number(),
  Type.Boolean(),
]);

export const CreateInstanceBody = Type.Object(
  {
    template: Type.String({ minLength: 1, maxLength: 255 }),
    version: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647 })),
    name: Type.String({ minLength: 1, maxLength: 64 }),
    variables: Type.Optional(
      Type.Record(Type.String({ maxLength: 64 }), VariableValue, { maxProperties: 256 }),
    ),
  },
  strict,
);
export type CreateInstanceBody = Static<typeof CreateInstanceBody>;

export const InputBody = Type.Object(
  { line: Type.String({ minLength: 1, maxLength: MAX_CONSOLE_LINE_LENGTH }) },
  strict,
);

export const InstanceState = Type.Union(INSTANCE_STATES.map((state) => Type.Literal(state)));

export const InstanceListQuery = Type.Object(
  {
    state: Type.Optional(Type.Array(InstanceState, { maxItems: 12 })),
    node: Type.Optional(Type.String({ maxLength: 128 })),
    template: Type.Optional(Type.String({ maxLength: 255 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    after: Type.Optional(Type.String({ maxLength: 512 })),
  },
  strict,
);
export type InstanceListQuery = Static<typeof InstanceListQuery>;

export const EventsQuery = Type.Object(
  {
    after: Type.Optional(Type.Integer({ minimum: 0 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  strict,
);

export const AuditQuery = Type.Object(
  {
    before: Type.Optional(Type.String({ maxLength: 64 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    target: Type.Optional(Type.String({ maxLength: 255 })),
    action: Type.Optional(Type.String({ maxLength: 64 })),
  },
  strict,
);

const Resources = Type.Object(
  {
    memoryMb: Type.Number({ minimum: 0, maximum: 1e9 }),
    cpu: Type.Number({ minimum: 0, maximum: 1e6 }),
    diskMb: Type.Number({ minimum: 0, maximum: 1e12 }),
  },
  strict,
);
const PortRange = Type.Object(
  {
    from: Type.Integer({ minimum: 1, maximum: 65535 }),
    to: Type.Integer({ minimum: 1, maximum: 65535 }),
  },
  strict,
);
const Labels = Type.Record(Type.String({ maxLength: 63 }), Type.String({ maxLength: 63 }), {
  maxProperties: 64,
});
const NodeDescriptionFields = {
  name: Type.String({ minLength: 1, maxLength: 128 }),
  capacity: Resources,
  labels: Labels,
  portRange: PortRange,
  reservedPorts: Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { maxItems: 1024 }),
  runtimes: Type.Array(Type.String({ minLength: 1, maxLength: 32 }), { maxItems: 8 }),
  agentVersion: Type.String({ maxLength: 64 }),
};

export const JoinBody = Type.Object(
  { joinToken: Type.String({ minLength: 1, maxLength: 256 }), ...NodeDescriptionFields },
  strict,
);

const Trigger = Type.Union(INSTANCE_TRIGGERS.map((trigger) => Type.Literal(trigger)));

export const SyncBody = Type.Object(
  {
    node: Type.Optional(Type.Partial(Type.Object(NodeDescriptionFields, strict))),
    inventory: Type.Array(
      Type.Object(
        {
          instanceId: Type.String({ maxLength: 128 }),
          state: InstanceState,
          seq: Type.Integer({ minimum: 0 }),
          epoch: Type.Integer({ minimum: 0 }),
        },
        strict,
      ),
      { maxItems: 10_000 },
    ),
    reports: Type.Array(
      Type.Object(
        {
          n: Type.Integer({ minimum: 1 }),
          instanceId: Type.String({ maxLength: 128 }),
          seq: Type.Integer({ minimum: 1 }),
          epoch: Type.Integer({ minimum: 0 }),
          trigger: Trigger,
          to: Type.Optional(InstanceState),
          reason: Type.String({ maxLength: 2000 }),
          at: Type.String({ maxLength: 64 }),
          failure: Type.Optional(
            Type.Object(
              {
                kind: Type.Union(
                  ["prepare-failed", "crashed", "start-timeout", "stop-failed", "crash-loop"].map(
                    (k) => Type.Literal(k),
                  ),
                ),
                message: Type.String({ maxLength: 2000 }),
                exitCode: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
                signal: Type.Optional(Type.Union([Type.String({ maxLength: 32 }), Type.Null()])),
              },
              strict,
            ),
          ),
          warnings: Type.Optional(Type.Array(Type.String({ maxLength: 2000 }), { maxItems: 32 })),
        },
        strict,
      ),
      { maxItems: 1000 },
    ),
    commandResults: Type.Array(
      Type.Object(
        {
          commandId: Type.String({ maxLength: 256 }),
          ok: Type.Boolean(),
          message: Type.Optional(Type.String({ maxLength: 4000 })),
        },
        strict,
      ),
      { maxItems: 1000 },
    ),
    logs: Type.Array(
      Type.Object(
        {
          instanceId: Type.String({ maxLength: 128 }),
          lines: Type.Array(
            Type.Object(
              {
                stream: Type.Union([Type.Literal("stdout"), Type.Literal("stderr")]),
                line: Type.String({ maxLength: 16384 }),
                at: Type.String({ maxLength: 64 }),
              },
              strict,
            ),
            { maxItems: 2000 },
          ),
        },
        strict,
      ),
      { maxItems: 500 },
    ),
    agentSessionId: Type.Optional(
      Type.String({ minLength: 8, maxLength: 64, pattern: "^[A-Za-z0-9_-]+$" }),
    ),
    releaseSession: Type.Optional(Type.Boolean()),
    syncNumber: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
    received: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
    stats: Type.Optional(
      Type.Array(
        Type.Object(
          {
            instanceId: Type.String({ maxLength: 128 }),
            at: Type.String({ maxLength: 64 }),
            cpu: Type.Number({ minimum: 0, maximum: 1e6 }),
            memoryBytes: Type.Number({ minimum: 0, maximum: 1e18 }),
            memoryLimitBytes: Type.Union([Type.Number({ minimum: 0, maximum: 1e18 }), Type.Null()]),
            networkRxBytes: Type.Union([Type.Number({ minimum: 0, maximum: 1e18 }), Type.Null()]),
            networkTxBytes: Type.Union([Type.Number({ minimum: 0, maximum: 1e18 }), Type.Null()]),
            diskBytes: Type.Union([Type.Number({ minimum: 0, maximum: 1e18 }), Type.Null()]),
          },
          strict,
        ),
        { maxItems: 500 },
      ),
    ),
    statsUnsupported: Type.Optional(Type.Array(Type.String({ maxLength: 128 }), { maxItems: 500 })),
    runtimes: Type.Optional(
      Type.Array(
        Type.Object(
          {
            kind: Type.String({ minLength: 1, maxLength: 32 }),
            available: Type.Boolean(),
            reason: Type.Optional(Type.String({ maxLength: 2000 })),
            since: Type.String({ maxLength: 64 }),
          },
          strict,
        ),
        { maxItems: 8 },
      ),
    ),
    wait: Type.Boolean(),
  },
  strict,
);
