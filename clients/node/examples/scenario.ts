// Runs grant → quote → apply → partial reverse → account against a loyalty
// server with LoyaltyClient and checks every number; exits 1 on any error or
// unexpected number.
//
//   npm ci && npm run build && node dist/examples/scenario.js --server 127.0.0.1:50051
//
// The numbers, by hand (program stomatorg, a new customer in the `base` tier):
//   - grant 500 `loyalty` points                         → balance 500
//   - cart: 2 × 5,000 ₽ (1,000,000 kopecks) + 300 ₽ delivery; the base tier
//     redeem cap is 3 % of the eligible base (delivery never counts):
//     floor(1,000,000 × 300 / 10,000) = 30,000 kopecks = 300 points (TIER_CAP);
//     payable 1,000,000 + 30,000 − 30,000 = 1,000,000;
//     points to earn: 3 % of 1,000,000 − 30,000 = 29,100 kopecks → 291 points
//   - apply 300                                           → balance 500 − 300 = 200
//   - return 1 of the 2 units: floor(300 × 1 / 2) = 150 back → balance 350
//   - account: 350 spendable, all `loyalty`, tier `base`
// With --lang, the client sends accept-language: the quote's explanation and a
// refused apply's (301 > 300 points) LocalizedMessage come in that language.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { CallInfo, LoyaltyClient, LoyaltyError } from "../src";
import { LineKind } from "../src/gen/loyalty/v1/cart";
import { BindingConstraint, RedemptionState } from "../src/gen/loyalty/v1/redemption";

const PROGRAM = "stomatorg";

async function scenario(client: LoyaltyClient, customerId: string): Promise<void> {
  const orderId = `order-${randomUUID()}`;
  const cart = {
    currency: "RUB",
    deliveryMinor: 30_000,
    lines: [
      { lineId: "1", sku: "drill", category: "tools", kind: LineKind.LINE_KIND_GOODS, quantity: 2, unitPriceMinor: 500_000 },
    ],
  };

  const welcome = {
    programId: PROGRAM, customerId, points: 500, source: "loyalty", reason: "welcome",
    requestId: `welcome-${customerId}`,
  };
  const first = new CallInfo();
  const granted = await client.grantPoints(welcome, first);
  console.log(`grant: balance ${granted.balanceAfter}`);
  assert.equal(granted.balanceAfter, 500);
  assert.equal(first.replayed, false);
  const again = new CallInfo(); // the same request id again: the first answer, marked replayed
  assert.deepEqual(await client.grantPoints(welcome, again), granted);
  console.log(`grant again: replayed ${again.replayed}`);
  assert.equal(again.replayed, true);

  const quote = await client.quoteRedemption({ programId: PROGRAM, customerId, cart });
  const best = quote.options[quote.recommendedOption];
  console.log(`quote: tier ${quote.tierId}, max ${best.maxPoints} points, pays ${best.payableMinor}, ` +
    `bound by ${BindingConstraint[best.bindingConstraint]}`);
  assert.equal(quote.options.length, 1);
  assert.equal(best.maxPoints, 300);
  assert.equal(best.maxDiscountMinor, 30_000);
  assert.equal(best.payableMinor, 1_000_000);
  assert.equal(best.pointsToEarn, 291);
  assert.equal(best.bindingConstraint, BindingConstraint.BINDING_CONSTRAINT_TIER_CAP);
  console.log(`quote says: ${best.explanation}`);
  assert.notEqual(best.explanation, "");

  try {
    await client.applyRedemption({ programId: PROGRAM, customerId, orderId: `${orderId}-too-many`, cart, points: 301 });
    assert.fail("applying 301 points succeeded; at most 300 fit");
  } catch (error) {
    if (!(error instanceof LoyaltyError)) throw error;
    const { locale, message } = error.localizedMessage;
    console.log(`refused: ${error.reason} (${locale}) ${message}`);
    assert.equal(error.reason, "EXCEEDS_MAXIMUM");
  }

  const applied = await client.applyRedemption({
    programId: PROGRAM, customerId, orderId, cart, points: best.maxPoints,
  });
  console.log(`apply: ${applied.redemption?.points} points, balance ${applied.balanceAfter}`);
  assert.equal(applied.redemption?.points, 300);
  assert.equal(applied.balanceAfter, 200);

  const back = await client.reverseRedemption({
    programId: PROGRAM, orderId, lines: [{ lineId: "1", quantity: 1 }], reason: "return",
  });
  console.log(`reverse: ${back.pointsReturned} points back, balance ${back.balanceAfter}`);
  assert.equal(back.pointsReturned, 150);
  assert.equal(back.balanceAfter, 350);
  assert.equal(back.redemption?.state, RedemptionState.REDEMPTION_STATE_PARTIALLY_REVERSED);

  const account = await client.getAccount({ programId: PROGRAM, customerId });
  console.log(`account: ${account.spendablePoints} spendable, tier ${account.tierId}, ` +
    `by source ${JSON.stringify(account.balancesBySource)}`);
  assert.equal(account.spendablePoints, 350);
  assert.deepEqual(account.balancesBySource, { loyalty: 350 });
  assert.equal(account.tierId, "base");
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      server: { type: "string", default: "127.0.0.1:50051" },
      customer: { type: "string", default: `node-${randomUUID()}` },
      token: { type: "string" },
      lang: { type: "string" },
    },
  });
  const client = new LoyaltyClient({ target: values.server, token: values.token, language: values.lang });
  try {
    await scenario(client, values.customer!);
    console.log("scenario OK");
    return 0;
  } catch (error) {
    if (error instanceof LoyaltyError) {
      console.error(`scenario failed: ${error.codeName} ${error.reason}: ${error.details}`, error.metadata, error.fieldViolations);
    } else {
      console.error("scenario failed:", error);
    }
    return 1;
  } finally {
    client.close();
  }
}

main().then((code) => {
  process.exitCode = code;
});
