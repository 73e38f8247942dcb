// Command scenario runs grant → quote → apply → partial reverse → account
// against a loyalty server with the generated Go client, and checks every
// number. It exits 1 on any error or unexpected number.
//
//	./debian-vendor.sh && GOFLAGS=-mod=vendor go run ./cmd/scenario -server 127.0.0.1:50051
//
// The numbers, by hand (program stomatorg, a new customer in the base tier):
//
//	grant 500 loyalty points                            → balance 500
//	the same grant again (same request id)              → the first answer, replayed
//	cart: 2 × 5,000 ₽ = 1,000,000 kopecks, + 300 ₽ delivery
//	  the base tier may pay 3 % of the eligible base (delivery never counts):
//	  floor(1,000,000 × 300 / 10,000) = 30,000 kopecks = 300 points (TIER_CAP)
//	  payable: 1,000,000 + 30,000 − 30,000 = 1,000,000
//	  points to earn: 3 % of (1,000,000 − 30,000) = 29,100 kopecks → 291 points
//	apply 300                                           → balance 500 − 300 = 200
//	return 1 of the 2 units: floor(300 × 1 / 2) = 150   → balance 200 + 150 = 350
//	account: 350 spendable, all of source loyalty, tier base
//
// With -lang, every call sends accept-language: the quote's explanation and a
// refused apply's (301 > 300 points) google.rpc.LocalizedMessage come in that
// language.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	loyaltyv1 "github.com/loyalty-pricing/loyalty/clients/go/loyalty/v1"
)

const program = "stomatorg"

func main() {
	server := flag.String("server", "127.0.0.1:50051", "the loyalty server, host:port")
	customer := flag.String("customer", "", "customer id (default: a new one)")
	timeout := flag.Duration("timeout", 30*time.Second, "deadline of the whole scenario")
	lang := flag.String("lang", "", "sent as accept-language, e.g. ru or \"en;q=0.5, ru\" (default: the program's language)")
	flag.Parse()
	if *customer == "" {
		*customer = "go-" + newID()
	}
	if err := run(*server, *customer, *lang, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "scenario failed:", describe(err))
		os.Exit(1)
	}
	fmt.Println("scenario OK")
}

func run(server, customer, lang string, timeout time.Duration) error {
	conn, err := grpc.Dial(server, grpc.WithInsecure())
	if err != nil {
		return err
	}
	defer conn.Close()
	accounts := loyaltyv1.NewAccountServiceClient(conn)
	checkout := loyaltyv1.NewRedemptionServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if lang != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "accept-language", lang)
	}
	order := "order-" + newID()
	cart := &loyaltyv1.Cart{
		Currency:      "RUB",
		DeliveryMinor: 30000,
		Lines: []*loyaltyv1.CartLine{{
			LineId: "1", Sku: "drill", Category: "tools",
			Kind: loyaltyv1.LineKind_LINE_KIND_GOODS, Quantity: 2, UnitPriceMinor: 500000,
		}},
	}

	welcome := &loyaltyv1.GrantPointsRequest{
		RequestId: "grant-" + newID(), ProgramId: program, CustomerId: customer,
		Points: 500, Source: "loyalty", Reason: "welcome",
	}
	granted, err := accounts.GrantPoints(ctx, welcome)
	if err != nil {
		return err
	}
	fmt.Printf("grant: balance %d\n", granted.BalanceAfter)
	check := expect{}
	check.equal("grant balance_after", granted.BalanceAfter, 500)

	// The same request id again: the first answer, marked in the trailers as a replay.
	var trailer metadata.MD
	again, err := accounts.GrantPoints(ctx, welcome, grpc.Trailer(&trailer))
	if err != nil {
		return err
	}
	fmt.Printf("grant again: replayed %t\n", replayed(trailer))
	check.equal("grant again balance_after", again.BalanceAfter, 500)
	check.equal("grant again replayed", boolInt(replayed(trailer)), 1)

	quote, err := checkout.QuoteRedemption(ctx, &loyaltyv1.QuoteRedemptionRequest{
		ProgramId: program, CustomerId: customer, Cart: cart,
	})
	if err != nil {
		return err
	}
	best := quote.Options[quote.RecommendedOption]
	fmt.Printf("quote: tier %s, max %d points, pays %d, bound by %s\n",
		quote.TierId, best.MaxPoints, best.PayableMinor, best.BindingConstraint)
	check.equal("quote options", int64(len(quote.Options)), 1)
	check.equal("quote max_points", best.MaxPoints, 300)
	check.equal("quote max_discount_minor", best.MaxDiscountMinor, 30000)
	check.equal("quote payable_minor", best.PayableMinor, 1000000)
	check.equal("quote points_to_earn", best.PointsToEarn, 291)
	check.equal("quote binding_constraint", int64(best.BindingConstraint),
		int64(loyaltyv1.BindingConstraint_BINDING_CONSTRAINT_TIER_CAP))
	fmt.Printf("quote says: %s\n", best.Explanation)

	_, err = checkout.ApplyRedemption(ctx, &loyaltyv1.ApplyRedemptionRequest{
		RequestId: "apply-" + newID(), ProgramId: program, CustomerId: customer,
		OrderId: order + "-too-many", Cart: cart, Points: 301,
	})
	if err == nil {
		return fmt.Errorf("applying 301 points succeeded; at most 300 fit")
	}
	reason, locale, message := details(err)
	fmt.Printf("refused: %s (%s) %s\n", reason, locale, message)
	if reason != "EXCEEDS_MAXIMUM" {
		return err
	}

	applied, err := checkout.ApplyRedemption(ctx, &loyaltyv1.ApplyRedemptionRequest{
		RequestId: "apply-" + newID(), ProgramId: program, CustomerId: customer,
		OrderId: order, Cart: cart, Points: best.MaxPoints,
	})
	if err != nil {
		return err
	}
	fmt.Printf("apply: %d points, state %s, balance %d\n",
		applied.Redemption.Points, applied.Redemption.State, applied.BalanceAfter)
	check.equal("apply points", applied.Redemption.Points, 300)
	check.equal("apply balance_after", applied.BalanceAfter, 200)

	back, err := checkout.ReverseRedemption(ctx, &loyaltyv1.ReverseRedemptionRequest{
		RequestId: "reverse-" + newID(), ProgramId: program, OrderId: order,
		Lines:  []*loyaltyv1.ReturnedLine{{LineId: "1", Quantity: 1}},
		Reason: "return",
	})
	if err != nil {
		return err
	}
	fmt.Printf("reverse: %d points back, state %s, balance %d\n",
		back.PointsReturned, back.Redemption.State, back.BalanceAfter)
	check.equal("reverse points_returned", back.PointsReturned, 150)
	check.equal("reverse balance_after", back.BalanceAfter, 350)
	check.equal("reverse state", int64(back.Redemption.State),
		int64(loyaltyv1.RedemptionState_REDEMPTION_STATE_PARTIALLY_REVERSED))

	account, err := accounts.GetAccount(ctx, &loyaltyv1.GetAccountRequest{
		ProgramId: program, CustomerId: customer,
	})
	if err != nil {
		return err
	}
	fmt.Printf("account: %d spendable, tier %s, by source %v\n",
		account.SpendablePoints, account.TierId, account.BalancesBySource)
	check.equal("account spendable_points", account.SpendablePoints, 350)
	check.equal("account loyalty balance", account.BalancesBySource["loyalty"], 350)
	if account.TierId != "base" {
		check.failures = append(check.failures, fmt.Sprintf("account tier_id: got %q, want \"base\"", account.TierId))
	}
	return check.err()
}

// expect collects every mismatch, so one run reports them all.
type expect struct{ failures []string }

func (e *expect) equal(what string, got, want int64) {
	if got != want {
		e.failures = append(e.failures, fmt.Sprintf("%s: got %d, want %d", what, got, want))
	}
}

func (e *expect) err() error {
	if len(e.failures) == 0 {
		return nil
	}
	return fmt.Errorf("unexpected numbers: %v", e.failures)
}

// describe renders a gRPC error with its google.rpc.ErrorInfo reason and
// BadRequest field violations, when the server sent them.
func describe(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	text := fmt.Sprintf("%s: %s", st.Code(), st.Message())
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			text += fmt.Sprintf(" [reason %s, metadata %v]", d.Reason, d.Metadata)
		case *errdetails.BadRequest:
			for _, v := range d.FieldViolations {
				text += fmt.Sprintf(" [field %s: %s]", v.Field, v.Description)
			}
		case *errdetails.LocalizedMessage:
			text += fmt.Sprintf(" [%s: %s]", d.Locale, d.Message)
		}
	}
	return text
}

// details returns the ErrorInfo reason and the LocalizedMessage (locale and the
// sentence for the shopper) of a failed call, empty when absent.
func details(err error) (reason, locale, message string) {
	st, _ := status.FromError(err)
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			reason = d.Reason
		case *errdetails.LocalizedMessage:
			locale, message = d.Locale, d.Message
		}
	}
	return reason, locale, message
}

// replayed: whether the service answered from its idempotency record (trailing
// metadata loyalty-replayed: true): the first answer again, nothing changed.
func replayed(trailer metadata.MD) bool {
	for _, value := range trailer.Get("loyalty-replayed") {
		if value == "true" {
			return true
		}
	}
	return false
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func newID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
