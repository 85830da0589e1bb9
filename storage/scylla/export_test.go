package scylla

// For the tests of package scylla_test.
var (
	CQLHost         = cqlHost
	FreshKeyspace   = freshKeyspace
	NewKeyspaceName = newKeyspaceName
	OpenTest        = openTest
)
