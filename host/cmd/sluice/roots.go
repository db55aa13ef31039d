package main

// The fallback roots are Mozilla's, used only where the system has none (an
// image FROM scratch), so that the binary alone can reach an HTTPS provider.
import _ "golang.org/x/crypto/x509roots/fallback"
