package salesforce_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"

	"takedown/pkg/salesforce"
	"takedown/pkg/salesforce/sfsim"
)

// The case-writer's write: one Case upserted by our report id and one
// Evidence_File__c per file upserted by our file id, in one composite
// request with allOrNone, so the org never holds half a report and a retry
// after any failure is harmless.
func ExampleClient_Composite() {
	sim, err := sfsim.New(sfsim.Config{ClientID: "cid", ClientSecret: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()

	ctx := context.Background()
	c, err := salesforce.New(salesforce.Options{
		LoginURL:    srv.URL, // the org's My Domain URL in production
		Credentials: salesforce.ClientCredentials{ClientID: "cid", ClientSecret: "secret"},
	})
	if err != nil {
		log.Fatal(err)
	}
	// At start: fail fast if the org lacks a configured field.
	if err := c.CheckSchema(ctx,
		salesforce.ObjectSchema{Object: "Case", ExternalIDField: "Takedown_Report_Id__c", Fields: []string{"Subject", "NCMEC_Report_Id__c"}},
		salesforce.ObjectSchema{Object: "Evidence_File__c", ExternalIDField: "Takedown_File_Id__c", Fields: []string{"Case__c", "SHA256__c"}},
	); err != nil {
		log.Fatal(err)
	}

	resp, err := c.Composite(ctx, salesforce.CompositeRequest{
		AllOrNone: true,
		Subrequests: []salesforce.Subrequest{
			c.UpsertSubrequest("refCase", "Case", "Takedown_Report_Id__c", "0190a4b2-7c1e-7000-8000-00000000000a", map[string]any{
				"Subject": "Report to NCMEC", "Type": "Child Protection", "NCMEC_Report_Id__c": "123456",
			}),
			c.UpsertSubrequest("refFile0", "Evidence_File__c", "Takedown_File_Id__c", "0190a4b2-7c1e-7000-8000-00000000000b", map[string]any{
				"Case__c":   salesforce.Ref("refCase", "id"),
				"SHA256__c": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			}),
		},
	})
	switch {
	case salesforce.IsValidation(err):
		log.Fatalf("fix the data or the field mapping (fields %v): %v", salesforce.FieldsOf(err), err)
	case salesforce.IsRetryable(err):
		log.Fatalf("try again later: %v", err)
	case err != nil:
		log.Fatal(err)
	}
	caseRes, _ := resp.Result("refCase")
	up, err := caseRes.UpsertResult()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("case created:", up.Created, "files:", len(sim.Records("Evidence_File__c")))
	// Output: case created: true files: 1
}
