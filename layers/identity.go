package layers

import (
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
)

// MaxIdentityBlock is the most channels an identity product turns at once where nowt lays a tensor out, or
// keeps it apart, by products with an identity instead of a copy (keptApart here, the feedback convolution's
// weight-gradient input): 16 float32 values are one 64-byte cache line, and a product costs 2·16 flops a value.
const MaxIdentityBlock = 16

// IdentityBlock is the channels one identity product turns for c channels: the largest divisor of c up to
// MaxIdentityBlock.
func IdentityBlock(c int) int {
	b := min(c, MaxIdentityBlock)
	for c%b != 0 {
		b--
	}
	return b
}

// keptApart returns x unchanged (1·xᵢ + Σ 0·xⱼ = xᵢ for finite x) as the product of its channel blocks with an
// identity: XLA's CPU compiler fuses no matrix product into its consumers, so x is computed once, where it is
// made, and read by them.
func keptApart(x *Node) *Node {
	b := IdentityBlock(x.Shape().Dim(-1))
	identity := ConvertDType(Diagonal(x.Graph(), b), x.DType())
	rows := Reshape(x, x.Shape().Size()/b, b)
	return Reshape(DotGeneral(rows, []int{1}, nil, identity, []int{0}, nil), x.Shape().Dimensions...)
}
