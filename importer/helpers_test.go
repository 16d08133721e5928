package importer

import (
	"bufio"
	"compress/gzip"
	"io"
	"strings"
)

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func gzipWriter(w io.Writer) *gzip.Writer { return gzip.NewWriter(w) }
