// Package wire holds the protobuf messages Switchboard nodes exchange in a
// cluster (wire.proto) and their generated Go code (wire.pb.go, committed).
// Regenerate after changing wire.proto, with Debian's protobuf-compiler and
// protoc-gen-go at the version named below on PATH:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go generate ./actors/wire
//
// .ci/run regenerates it and fails if the result differs from what is
// committed.
package wire

//go:generate protoc --proto_path=../.. --go_out=../.. --go_opt=paths=source_relative actors/wire/wire.proto
