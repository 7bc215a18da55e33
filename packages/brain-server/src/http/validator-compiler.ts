/**
 * Request validation: bodies are validated strictly (no type coercion, unknown
 * fields refused rather than silently dropped, so mass assignment is an error
 * the client sees); query strings, params and headers are strings on the wire
 * and get coerced.
 */
import { Ajv, type Options } from "ajv";
import addFormats from "ajv-formats";
import type { FastifySchemaCompiler } from "fastify";

function ajv(options: Options): Ajv {
  const instance = new Ajv({
    allErrors: true,
    removeAdditional: false,
    useDefaults: true,
    ...options,
  });
  (addFormats as unknown as (ajv: Ajv) => void)(instance);
  return instance;
}

export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const strict = ajv({ coerceTypes: false });
  const coercing = ajv({ coerceTypes: "array" });
  return ({ schema, httpPart }) => {
    const validator = (httpPart === "body" ? strict : coercing).compile(schema as object);
    return (data: unknown) =>
      validator(data)
        ? { value: data }
        : {
            error: Object.assign(new Error("validation failed"), { validation: validator.errors }),
          };
  };
}
