package integration

import "github.com/stretchr/testify/assert"

type assertCollect = assert.CollectT
