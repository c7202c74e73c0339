module github.com/yutopp/go-amf0

go 1.21
