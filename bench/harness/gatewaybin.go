package harness

import (
	"errors"
	"os/exec"

	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// gatewayProc is a gateway started from its binary (--gateway-bin).
type gatewayProc struct {
	cmd      *exec.Cmd
	addr     string
	smscAddr string
	sim      *smsc.Server
	secrets  []string
}

func (r *rig) startGatewayBin(cfg nodeConfig) (*gatewayProc, error) {
	return nil, errors.New("--gateway-bin: not implemented yet")
}
