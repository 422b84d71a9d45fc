package drivers

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

func TestRegistry(t *testing.T) {
	sim := NewSimulated(NewMemoryVersionStore(), SimulatedOptions{})
	r := NewRegistry(map[string]Driver{models.DriverSimulated: sim})

	d, err := r.For(models.DriverSimulated)
	require.NoError(t, err)
	require.Same(t, sim, d)

	_, err = r.For(models.DriverScript)
	require.ErrorContains(t, err, `no driver "script"`)
}
