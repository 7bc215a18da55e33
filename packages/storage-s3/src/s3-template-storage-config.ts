import type { S3Client } from "@aws-sdk/client-s3";

/** Options of `S3TemplateStorage`. */
export interface S3TemplateStorageConfig {
  /** The bucket holding `layers/` and `templates/`. */
  bucket: string;
  /** Key prefix inside the bucket, e.g. `orchestrator/` (must end with `/`). Default: the bucket root. */
  prefix?: string;
  /** Endpoint of an S3-compatible server (MinIO, Ceph, R2, s3rver); AWS when absent. */
  endpoint?: string;
  /** Region. Default `us-east-1` (what most S3-compatible servers expect). */
  region?: string;
  /** Path-style URLs (`endpoint/bucket/key`). Default: true when `endpoint` is set (MinIO, s3rver need it). */
  forcePathStyle?: boolean;
  /** Static credentials; when absent the SDK's standard chain (env, profile, SSO, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /**
   * When the SDK adds request checksums. Default `WHEN_REQUIRED`: with
   * `WHEN_SUPPORTED`, streamed uploads use aws-chunked framing that several
   * S3-compatible servers store verbatim (silent corruption).
   */
  requestChecksumCalculation?: "WHEN_REQUIRED" | "WHEN_SUPPORTED";
  /** Refuse every write (`capabilities.writable` is false). */
  readOnly?: boolean;
  /** Requests in flight at once (and sockets kept). Default 16. */
  maxConcurrency?: number;
  /** Retries of retryable failures (throttling, 5xx, network), with full-jitter backoff. */
  retry?: {
    /** Attempts in total, the first included. Default 4. */
    attempts?: number;
    /** Default 100 ms. */
    baseDelayMs?: number;
    /** Default 5000 ms. */
    maxDelayMs?: number;
  };
  /** Connection and socket-idle timeout, in ms. Default 30,000. */
  timeoutMs?: number;
  /** Keys per listing page (1–1000). Default 1000. */
  pageSize?: number;
  /**
   * Trust a plain (non-multipart) ETag as the content's MD5 (true for AWS
   * without SSE-KMS/SSE-C, MinIO, Ceph, s3rver). Set false for buckets with
   * KMS or customer-key encryption. Default true.
   */
  etagIsContentMd5?: boolean;
  /** An existing client to use instead (endpoint, region, credentials, timeouts above are then ignored). */
  client?: S3Client;
}
