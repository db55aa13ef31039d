package textnorm_test

import (
	"fmt"

	"github.com/sluicehq/sluice/host/textnorm"
)

func Example() {
	src := "SSN １２３\u200b-45-6789, mail jane&#64;example.com"
	t := textnorm.Normalize(src)
	fmt.Println(t.String())

	// A scanner found the SSN at [4, 15) of the view: mask those bytes of
	// the original.
	s, e, _ := t.Original(4, 15)
	fmt.Printf("%q\n", src[s:e])

	s, e, _ = t.Original(22, 38)
	fmt.Printf("%q\n", src[s:e])
	// Output:
	// SSN 123-45-6789, mail jane@example.com
	// "１２３\u200b-45-6789"
	// "jane&#64;example.com"
}

func ExampleText_Identity() {
	t := textnorm.Normalize("Plain prompts cost nothing: no copy, no allocation.")
	fmt.Println(t.Identity())
	// Output: true
}
