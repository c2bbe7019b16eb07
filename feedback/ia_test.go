package feedback

func init() {
	// ia: the stored B (learned by Gradients; see TestInformationAlignmentGradient).
	ruleReferences["ia"] = ruleReference{kernel: storedReference}
}
