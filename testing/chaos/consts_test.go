package chaos_test

const (
	scaleSeed      = 20261101
	scaleCustomers = 3400
)
