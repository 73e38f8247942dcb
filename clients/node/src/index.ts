// The loyalty.v1 client for Node: LoyaltyClient (promises, deadlines,
// retries on UNAVAILABLE, request ids, decoded errors) and the generated
// messages and stubs, one namespace per .proto file.
export {
  CallInfo,
  LoyaltyClient,
  type LoyaltyClientOptions,
  REPLAYED_KEY,
  type TlsOptions,
  serviceConfig,
  withRequestId,
} from "./client";
export { LoyaltyError, type FieldViolation, type LocalizedMessage, decodeError } from "./errors";
export * as accountService from "./gen/loyalty/v1/account_service";
export * as cart from "./gen/loyalty/v1/cart";
export * as errors from "./gen/loyalty/v1/errors";
export * as redemption from "./gen/loyalty/v1/redemption";
export * as redemptionService from "./gen/loyalty/v1/redemption_service";
