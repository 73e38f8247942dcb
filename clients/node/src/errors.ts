// A failed call decoded: its gRPC status code, the google.rpc.ErrorInfo the
// service attaches (domain "loyalty", `reason` one of loyalty.v1.ErrorReason
// without its prefix), the google.rpc.BadRequest field violations and the
// google.rpc.LocalizedMessage (one sentence for the shopper, in the call's language).
//
// The details travel in the `grpc-status-details-bin` trailer as a serialized
// google.rpc.Status. Only three small messages are read from it, so they are
// decoded here by field number rather than generated from googleapis:
//   Status      { int32 code = 1; string message = 2; repeated Any details = 3; }
//   Any         { string type_url = 1; bytes value = 2; }
//   ErrorInfo   { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
//   BadRequest  { repeated FieldViolation field_violations = 1; }
//   FieldViolation { string field = 1; string description = 2; }
//   LocalizedMessage { string locale = 1; string message = 2; }
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { type ServiceError, status } from "@grpc/grpc-js";

const ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo";
const BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest";
const LOCALIZED_MESSAGE = "type.googleapis.com/google.rpc.LocalizedMessage";

/** The sentence for the shopper, and its locale (e.g. "ru"). */
export interface LocalizedMessage {
  locale: string;
  message: string;
}

export interface FieldViolation {
  field: string;
  description: string;
}

/** Every failed call of LoyaltyClient rejects with one of these. */
export class LoyaltyError extends Error {
  constructor(
    readonly code: status,
    readonly details: string,
    readonly reason: string,
    readonly domain: string,
    readonly metadata: Record<string, string>,
    readonly fieldViolations: FieldViolation[],
    readonly localizedMessage: LocalizedMessage = { locale: "", message: "" },
  ) {
    super(`${status[code] ?? code}${reason ? ` ${reason}` : ""}: ${details}`);
    this.name = "LoyaltyError";
  }

  /** The status code's name, e.g. "FAILED_PRECONDITION". */
  get codeName(): string {
    return status[this.code] ?? String(this.code);
  }
}

/** Decode a grpc-js ServiceError into a LoyaltyError. */
export function decodeError(error: ServiceError): LoyaltyError {
  let reason = "";
  let domain = "";
  let metadata: Record<string, string> = {};
  const fieldViolations: FieldViolation[] = [];
  let localizedMessage: LocalizedMessage = { locale: "", message: "" };
  const raw = error.metadata?.get("grpc-status-details-bin")[0];
  if (raw instanceof Buffer) {
    for (const { typeUrl, value } of readStatusDetails(raw)) {
      if (typeUrl === ERROR_INFO) {
        ({ reason, domain, metadata } = readErrorInfo(value));
      } else if (typeUrl === BAD_REQUEST) {
        fieldViolations.push(...readBadRequest(value));
      } else if (typeUrl === LOCALIZED_MESSAGE) {
        localizedMessage = readLocalizedMessage(value);
      }
    }
  }
  return new LoyaltyError(error.code, error.details, reason, domain, metadata, fieldViolations, localizedMessage);
}

/** Calls `onField(fieldNumber)` for each field of a message; unread fields are skipped. */
function eachField(reader: BinaryReader, end: number, onField: (field: number) => boolean): void {
  while (reader.pos < end) {
    const [field, wireType] = reader.tag();
    if (!onField(field)) {
      reader.skip(wireType as WireType);
    }
  }
}

function readStatusDetails(bytes: Uint8Array): { typeUrl: string; value: Uint8Array }[] {
  const reader = new BinaryReader(bytes);
  const details: { typeUrl: string; value: Uint8Array }[] = [];
  eachField(reader, reader.len, (field) => {
    if (field !== 3) return false;
    const any: { typeUrl: string; value: Uint8Array } = { typeUrl: "", value: new Uint8Array() };
    const end = reader.uint32() + reader.pos;
    eachField(reader, end, (anyField) => {
      if (anyField === 1) any.typeUrl = reader.string();
      else if (anyField === 2) any.value = reader.bytes();
      else return false;
      return true;
    });
    details.push(any);
    return true;
  });
  return details;
}

function readErrorInfo(bytes: Uint8Array): { reason: string; domain: string; metadata: Record<string, string> } {
  const reader = new BinaryReader(bytes);
  const info = { reason: "", domain: "", metadata: {} as Record<string, string> };
  eachField(reader, reader.len, (field) => {
    if (field === 1) info.reason = reader.string();
    else if (field === 2) info.domain = reader.string();
    else if (field === 3) {
      const [key, value] = readPair(reader);
      info.metadata[key] = value;
    } else return false;
    return true;
  });
  return info;
}

function readBadRequest(bytes: Uint8Array): FieldViolation[] {
  const reader = new BinaryReader(bytes);
  const violations: FieldViolation[] = [];
  eachField(reader, reader.len, (field) => {
    if (field !== 1) return false;
    const [fieldPath, description] = readPair(reader);
    violations.push({ field: fieldPath, description });
    return true;
  });
  return violations;
}

function readLocalizedMessage(bytes: Uint8Array): LocalizedMessage {
  const reader = new BinaryReader(bytes);
  const localized: LocalizedMessage = { locale: "", message: "" };
  eachField(reader, reader.len, (field) => {
    if (field === 1) localized.locale = reader.string();
    else if (field === 2) localized.message = reader.string();
    else return false;
    return true;
  });
  return localized;
}

/** A length-delimited message whose fields 1 and 2 are strings (a map entry, a FieldViolation). */
function readPair(reader: BinaryReader): [string, string] {
  const pair: [string, string] = ["", ""];
  const end = reader.uint32() + reader.pos;
  eachField(reader, end, (field) => {
    if (field === 1) pair[0] = reader.string();
    else if (field === 2) pair[1] = reader.string();
    else return false;
    return true;
  });
  return pair;
}
