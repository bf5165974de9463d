package queryrange

import (
	"encoding/binary"
	"math/bits"
	"strings"
)

// This file is the skim of a querier's answer (skimJSONResponse), on the
// path of every answer, passed on or not: the series, nearly all of its
// bytes, are only checked to be well-nested JSON. skimNested checks 64
// bytes at a time with bit masks, about 1.7 times as fast as the byte
// loop (skipNestedBytes), which stays the reference: it gives the errors
// and their offsets, and skimNested accepts exactly what it accepts, up to
// 64 levels of nesting, to the same end.

// skipSeries skips an array of series, noting whether it is empty.
func (d *jsonDecoder) skipSeries() {
	if d.peek() != '[' {
		d.unexpected("want '['")
		return
	}
	start := d.i
	d.i++
	if d.peek() == ']' {
		d.i++
		return
	}
	d.i = start
	d.hasSeries = true
	d.skipNested()
}

// skipNested skips the array or object at d.i, checking no more than that
// brackets and braces nest and strings end, without control characters:
// what is inside is read (or found invalid) only when the series are
// needed. It goes byte by byte (skipNestedBytes) only for what skimNested
// cannot tell: an error's offset, or deep nesting.
func (d *jsonDecoder) skipNested() {
	if end, ok := skimNested(d.b, d.i); ok {
		d.i = end
		return
	}
	d.skipNestedBytes()
}

// skipNestedBytes is skipNested byte by byte, without allocating below 64
// levels of nesting.
func (d *jsonDecoder) skipNestedBytes() {
	var stackBuf [64]byte
	stack := stackBuf[:0] // the closing bracket each open one awaits
	b, i := d.b, d.i
	for i < len(b) {
		c := b[i]
		i++
		if skimPlain[c] {
			continue
		}
		switch c {
		case '[':
			stack = append(stack, ']')
		case '{':
			stack = append(stack, '}')
		case ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != c {
				d.i = i - 1
				d.fail("unexpected %q", c)
				return
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				d.i = i
				return
			}
		case '"':
			for {
				for i < len(b) && skimPlainInString[b[i]] {
					i++
				}
				if i >= len(b) {
					d.i = i
					d.fail("unexpected end of input")
					return
				}
				c := b[i]
				i++
				if c == '"' {
					break
				}
				if c == '\\' {
					i++
				} else {
					d.i = i - 1
					d.fail("control character in string")
					return
				}
			}
		}
	}
	d.i = len(b)
	d.fail("unexpected end of input")
}

// skimPlain marks the bytes skipNestedBytes passes over outside strings;
// skimPlainInString those it passes over inside.
var skimPlain, skimPlainInString = func() (out, in [256]bool) {
	for c := range 256 {
		out[c] = !strings.ContainsRune(`[]{}"`, rune(c))
		in[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return out, in
}()

// Masks of the bytes of a 64-bit word, little-endian: each byte's high bit.
const (
	ones = 0x0101010101010101
	low7 = 0x7f7f7f7f7f7f7f7f
	high = 0x8080808080808080
)

// eqBytes returns the high bit of each byte of w equal to c's, exactly
// (no borrow between bytes, unlike the usual has-zero-byte trick).
func eqBytes(w, c uint64) uint64 {
	x := w ^ c
	return ^((x&low7 + low7) | x) & high
}

// gather packs the high bits of the bytes of m (high-bit masks) into its
// low 8 bits, byte 0's first. The products of the bits do not overlap.
func gather(m uint64) uint64 {
	return m * 0x0002040810204081 >> 56
}

// blockMasks classifies the 64 bytes of blk: quotes and brackets ([]{},
// and some other bytes, which skimNested passes over) as bit masks, and
// others not 0 when there is a backslash or a control character.
func blockMasks(blk *[64]byte) (quotes, brackets, others uint64) {
	q0, b0, o0 := wordMasks(binary.LittleEndian.Uint64(blk[0:8]))
	q1, b1, o1 := wordMasks(binary.LittleEndian.Uint64(blk[8:16]))
	q2, b2, o2 := wordMasks(binary.LittleEndian.Uint64(blk[16:24]))
	q3, b3, o3 := wordMasks(binary.LittleEndian.Uint64(blk[24:32]))
	q4, b4, o4 := wordMasks(binary.LittleEndian.Uint64(blk[32:40]))
	q5, b5, o5 := wordMasks(binary.LittleEndian.Uint64(blk[40:48]))
	q6, b6, o6 := wordMasks(binary.LittleEndian.Uint64(blk[48:56]))
	q7, b7, o7 := wordMasks(binary.LittleEndian.Uint64(blk[56:64]))
	quotes = gather(q0) | gather(q1)<<8 | gather(q2)<<16 | gather(q3)<<24 | gather(q4)<<32 | gather(q5)<<40 | gather(q6)<<48 | gather(q7)<<56
	brackets = gather(b0) | gather(b1)<<8 | gather(b2)<<16 | gather(b3)<<24 | gather(b4)<<32 | gather(b5)<<40 | gather(b6)<<48 | gather(b7)<<56
	return quotes, brackets, o0 | o1 | o2 | o3 | o4 | o5 | o6 | o7
}

// wordMasks classifies the 8 bytes of w, as high bits: quotes, exactly;
// brackets, and bytes that fold to one of them or to 'y' or DEL ('Y', '_',
// 'y', DEL); and not exactly, but not 0 when there is one, backslashes and
// control characters.
func wordMasks(w uint64) (quotes, brackets, others uint64) {
	quotes = eqBytes(w, '"'*ones)
	// '[' 0x5b, ']' 0x5d, '{' 0x7b and '}' 0x7d are 0x79 with 0x20 set
	// and bits 0x06 cleared.
	brackets = eqBytes((w|0x20*ones)&^(0x06*ones), 0x79*ones)
	bs := w ^ '\\'*ones
	others = (bs-ones)&^bs | (w-0x20*ones)&^w
	return quotes, brackets, others & high
}

// skimNested returns the index after the array or object at b[i] and
// true, as skipNestedBytes finds it, or false when that finds an error or
// the value nests deeper than 64 levels (which this leaves to it, for a
// stack of one bit per level). It takes 64 bytes at a time: the quotes
// give the bytes in strings (a running XOR), and the brackets outside
// them are matched on the stack. A block with a backslash (whose escaped
// quote is no quote) or a control character (an error in a string) goes
// through skimBytes instead.
func skimNested(b []byte, i int) (int, bool) {
	var (
		stack uint64 // bit per level, the innermost lowest: 1 is an object
		depth int
		inStr bool
	)
	for {
		for len(b)-i >= 64 {
			blk := (*[64]byte)(b[i : i+64])
			quotes, brackets, others := blockMasks(blk)
			if others != 0 {
				break
			}
			// inside has the bits of the bytes after an opening quote up to
			// its closing quote (the opening one, not the closing one).
			inside := quotes
			inside ^= inside << 1
			inside ^= inside << 2
			inside ^= inside << 4
			inside ^= inside << 8
			inside ^= inside << 16
			inside ^= inside << 32
			if inStr {
				inside = ^inside
			}
			for m := brackets &^ inside; m != 0; m &= m - 1 {
				k := bits.TrailingZeros64(m)
				switch blk[k&63] {
				case '[':
					stack <<= 1
					depth++
				case '{':
					stack = stack<<1 | 1
					depth++
				case ']':
					if depth == 0 || stack&1 != 0 {
						return 0, false
					}
					stack >>= 1
					depth--
				case '}':
					if depth == 0 || stack&1 == 0 {
						return 0, false
					}
					stack >>= 1
					depth--
				default:
					continue // 'y', 'Y', '_' or DEL: see wordMasks
				}
				if depth == 0 {
					return i + k + 1, true
				}
				if depth > 64 {
					return 0, false
				}
			}
			inStr = inside>>63 != 0
			i += 64
		}
		var done, ok bool
		i, stack, depth, inStr, done, ok = skimBytes(b, i, min(i+64, len(b)), stack, depth, inStr)
		if done || !ok {
			return i, ok
		}
		if i >= len(b) {
			return 0, false // not closed
		}
	}
}

// skimBytes is skimNested's byte loop, for b[i:end] and the byte after it
// if that is escaped: it returns where it stopped, the state there, and
// done when the value closed there, or not ok on an error or past 64
// levels.
func skimBytes(b []byte, i, end int, stack uint64, depth int, inStr bool) (_ int, _ uint64, _ int, _ bool, done, ok bool) {
	for i < end {
		c := b[i]
		i++
		if inStr {
			switch {
			case c == '"':
				inStr = false
			case c == '\\':
				if i >= len(b) {
					return i, stack, depth, inStr, false, false
				}
				i++
			case c < 0x20:
				return i, stack, depth, inStr, false, false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '[', '{':
			stack <<= 1
			if c == '{' {
				stack |= 1
			}
			depth++
			if depth > 64 {
				return i, stack, depth, inStr, false, false
			}
		case ']', '}':
			if depth == 0 || (stack&1 == 1) != (c == '}') {
				return i, stack, depth, inStr, false, false
			}
			stack >>= 1
			depth--
			if depth == 0 {
				return i, stack, depth, inStr, true, true
			}
		}
	}
	return i, stack, depth, inStr, false, true
}
