package workunits

// OpCredit is vol.H.credit: a host asks for its own credit and its user's
// (a CreditRequest → CreditReply), for the volunteer's page and
// screensaver. The gateway answers it from the project's state; it never
// enters the log.
const OpCredit = "credit"

// CreditRequest asks for the requesting host's credit.
type CreditRequest struct {
	V int `json:"v"`
}

// CreditReply is a host's credit and its owner's, in Cobblestones, with
// recent average credit per day, as of the scheduler's newest tick. User
// and Team are names; both are "" for a host of an open project, and Team
// for a user in none.
type CreditReply struct {
	V          int     `json:"v"`
	Error      *Error  `json:"error,omitempty"`
	HostCredit float64 `json:"host_credit"`
	HostRAC    float64 `json:"host_rac"`
	User       string  `json:"user,omitempty"`
	UserCredit float64 `json:"user_credit"`
	UserRAC    float64 `json:"user_rac"`
	Team       string  `json:"team,omitempty"`
	TeamCredit float64 `json:"team_credit"`
	TeamRAC    float64 `json:"team_rac"`
}

// Validate checks a CreditRequest: it carries nothing to check.
func (m *CreditRequest) Validate() error { return nil }
