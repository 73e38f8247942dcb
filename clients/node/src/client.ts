// A promise-based client over the generated grpc-js stubs: a deadline on every
// call, retries on UNAVAILABLE only (through the channel's service config),
// a request_id for every mutation, errors decoded into LoyaltyError, and an
// optional bearer token and TLS.
import { randomUUID } from "node:crypto";
import {
  type CallOptions,
  type ChannelCredentials,
  type ClientUnaryCall,
  credentials,
  Metadata,
  type ServiceError,
  status as grpcStatus,
  type StatusObject,
} from "@grpc/grpc-js";
import {
  AccountServiceClient,
  AccrueOrderRequest,
  type AccrueOrderResponse,
  type DeepPartial,
  GetAccountRequest,
  type GetAccountResponse,
  GrantPointsRequest,
  type GrantPointsResponse,
  ListLedgerEntriesRequest,
  type ListLedgerEntriesResponse,
} from "./gen/loyalty/v1/account_service";
import {
  ApplyRedemptionRequest,
  type ApplyRedemptionResponse,
  CaptureRedemptionRequest,
  type CaptureRedemptionResponse,
  GetRedemptionRequest,
  type GetRedemptionResponse,
  QuoteRedemptionRequest,
  type QuoteRedemptionResponse,
  RedemptionServiceClient,
  ReverseRedemptionRequest,
  type ReverseRedemptionResponse,
} from "./gen/loyalty/v1/redemption_service";
import { decodeError } from "./errors";

export interface TlsOptions {
  /** PEM root certificates; the system's roots when unset. */
  rootCerts?: Buffer;
  /** PEM client private key and certificate chain, for mutual TLS. */
  privateKey?: Buffer;
  certChain?: Buffer;
}

export interface LoyaltyClientOptions {
  /** Where the server listens, host:port. Default 127.0.0.1:50051. */
  target?: string;
  /** Deadline of each call in milliseconds. Default 10,000. */
  timeoutMs?: number;
  /** Bearer token, sent as `authorization: Bearer <token>` on every call. */
  token?: string;
  /** TLS settings; plaintext when unset. */
  tls?: TlsOptions;
  /** Attempts per call (the first included) when the server is UNAVAILABLE. Default 4. */
  maxAttempts?: number;
  /**
   * Sent as `accept-language` on every call (e.g. "ru", "en;q=0.5, ru"): the language of
   * explanations, tier names and error messages. Unset: the program's default language.
   */
  language?: string;
}

/**
 * Only UNAVAILABLE is retried: the call did not reach the service, or the
 * database was away. That is safe for mutations because each carries a
 * request_id the client fixes before the first attempt, so a retry that
 * follows a success gets the first answer back.
 */
export function serviceConfig(maxAttempts: number): string {
  return JSON.stringify({
    methodConfig: [
      {
        name: [{ service: "loyalty.v1.RedemptionService" }, { service: "loyalty.v1.AccountService" }],
        retryPolicy: {
          maxAttempts,
          initialBackoff: "0.1s",
          maxBackoff: "2s",
          backoffMultiplier: 2,
          retryableStatusCodes: ["UNAVAILABLE"],
        },
      },
    ],
  });
}

type Callback<Res> = (error: ServiceError | null, response: Res) => void;
type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: Callback<Res>,
) => ClientUnaryCall;

/** Trailing metadata the service adds to an answer served from its idempotency record. */
export const REPLAYED_KEY = "loyalty-replayed";

/**
 * What a call's trailing metadata said; pass one to a mutation to learn it.
 * `replayed` is true when the service answered from its idempotency record: the
 * request id was seen before, the answer is the first call's, this call changed nothing.
 */
export class CallInfo {
  replayed = false;
  trailingMetadata?: Metadata;
}

export class LoyaltyClient {
  readonly accounts: AccountServiceClient;
  readonly redemptions: RedemptionServiceClient;
  private readonly timeoutMs: number;
  private readonly token?: string;
  private readonly language?: string;

  constructor(options: LoyaltyClientOptions = {}) {
    const target = options.target ?? "127.0.0.1:50051";
    const channelCredentials: ChannelCredentials = options.tls
      ? credentials.createSsl(options.tls.rootCerts ?? null, options.tls.privateKey ?? null, options.tls.certChain ?? null)
      : credentials.createInsecure();
    const channelOptions = {
      "grpc.service_config": serviceConfig(options.maxAttempts ?? 4),
      "grpc.enable_retries": 1,
    };
    this.accounts = new AccountServiceClient(target, channelCredentials, channelOptions);
    // The second client shares the first one's channel.
    this.redemptions = new RedemptionServiceClient(target, channelCredentials, {
      ...channelOptions,
      channelOverride: this.accounts.getChannel(),
    });
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.token = options.token;
    this.language = options.language;
  }

  close(): void {
    this.accounts.close();
  }

  quoteRedemption(request: DeepPartial<QuoteRedemptionRequest>): Promise<QuoteRedemptionResponse> {
    return this.call(this.redemptions, this.redemptions.quoteRedemption, QuoteRedemptionRequest.fromPartial(request));
  }

  applyRedemption(request: DeepPartial<ApplyRedemptionRequest>, info?: CallInfo): Promise<ApplyRedemptionResponse> {
    return this.call(this.redemptions, this.redemptions.applyRedemption, withRequestId(ApplyRedemptionRequest.fromPartial(request)), info);
  }

  captureRedemption(request: DeepPartial<CaptureRedemptionRequest>, info?: CallInfo): Promise<CaptureRedemptionResponse> {
    return this.call(this.redemptions, this.redemptions.captureRedemption, withRequestId(CaptureRedemptionRequest.fromPartial(request)), info);
  }

  reverseRedemption(request: DeepPartial<ReverseRedemptionRequest>, info?: CallInfo): Promise<ReverseRedemptionResponse> {
    return this.call(this.redemptions, this.redemptions.reverseRedemption, withRequestId(ReverseRedemptionRequest.fromPartial(request)), info);
  }

  getRedemption(request: DeepPartial<GetRedemptionRequest>): Promise<GetRedemptionResponse> {
    return this.call(this.redemptions, this.redemptions.getRedemption, GetRedemptionRequest.fromPartial(request));
  }

  getAccount(request: DeepPartial<GetAccountRequest>): Promise<GetAccountResponse> {
    return this.call(this.accounts, this.accounts.getAccount, GetAccountRequest.fromPartial(request));
  }

  grantPoints(request: DeepPartial<GrantPointsRequest>, info?: CallInfo): Promise<GrantPointsResponse> {
    return this.call(this.accounts, this.accounts.grantPoints, withRequestId(GrantPointsRequest.fromPartial(request)), info);
  }

  accrueOrder(request: DeepPartial<AccrueOrderRequest>, info?: CallInfo): Promise<AccrueOrderResponse> {
    return this.call(this.accounts, this.accounts.accrueOrder, withRequestId(AccrueOrderRequest.fromPartial(request)), info);
  }

  listLedgerEntries(request: DeepPartial<ListLedgerEntriesRequest>): Promise<ListLedgerEntriesResponse> {
    return this.call(this.accounts, this.accounts.listLedgerEntries, ListLedgerEntriesRequest.fromPartial(request));
  }

  private call<Req, Res>(stub: object, method: Unary<Req, Res>, request: Req, info?: CallInfo): Promise<Res> {
    return new Promise((resolve, reject) => {
      const metadata = new Metadata();
      if (this.token) {
        metadata.set("authorization", `Bearer ${this.token}`); // throws on a malformed token
      }
      if (this.language) {
        metadata.set("accept-language", this.language);
      }
      const deadline = new Date(Date.now() + this.timeoutMs);
      let answer: Res;
      const call = method.call(stub, request, metadata, { deadline }, (error, response) => {
        if (error) reject(decodeError(error));
        else answer = response;
      });
      // The trailers come with the status, which grpc-js emits right after the callback:
      // resolve then, so that `info` is filled in before the caller sees the answer.
      call.on("status", (status: StatusObject) => {
        if (status.code !== grpcStatus.OK) return; // rejected above
        if (info) {
          info.trailingMetadata = status.metadata;
          info.replayed = status.metadata.get(REPLAYED_KEY).includes("true");
        }
        resolve(answer);
      });
    });
  }
}

/** The request with a fresh request_id (a UUID) when the caller gave none. */
export function withRequestId<Req extends { requestId: string }>(request: Req): Req {
  return request.requestId ? request : { ...request, requestId: randomUUID() };
}
