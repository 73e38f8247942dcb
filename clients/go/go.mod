module github.com/loyalty-pricing/loyalty/clients/go

go 1.19

// The versions Debian 12 packages (golang-google-grpc-dev and friends): the
// module builds offline against them with ./debian-vendor.sh and -mod=vendor.
// genproto is the version grpc v1.33.3 requires (Debian ships a 2020-04-13
// snapshot of it). Elsewhere, `go mod tidy` fetches real modules and go.sum.
require (
	google.golang.org/genproto v0.0.0-20200526211855-cb27e3aa2013
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)

require (
	github.com/golang/protobuf v1.5.2 // indirect
	golang.org/x/net v0.7.0 // indirect
	golang.org/x/sys v0.3.0 // indirect
	golang.org/x/text v0.7.0 // indirect
)
