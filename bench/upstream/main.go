// Command upstream is the load harness's upstream (bench/run.sh): an HTTP
// server that answers every request 200 with a small JSON body, so that what
// the harness measures in front of it is the proxy and the gateway.
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
	"time"
)

var body = []byte(`{"ok":true}` + "\n")

func main() {
	addr := flag.String("addr", "127.0.0.1:9081", "the address to listen on")
	flag.Parse()
	length := []string{strconv.Itoa(len(body))}
	contentType := []string{"application/json"}
	srv := &http.Server{
		Addr: *addr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Content-Type"] = contentType
			h["Content-Length"] = length
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Fatal(srv.ListenAndServe())
}
