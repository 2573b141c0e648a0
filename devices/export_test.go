package devices

// CheckBlock is checkBlock, for the self-test's own test.
var CheckBlock = checkBlock
