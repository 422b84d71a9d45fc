// Command service is a small HTTP service that answers its version; the
// script driver's end-to-end test deploys, restarts and rolls it back.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	version := flag.String("version", "", "the version this process serves")
	flag.Parse()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"version": *version})
	})
	log.Printf("serving version %s on %s", *version, *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
